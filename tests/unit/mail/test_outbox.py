import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from bastion.mail import (
    DirectoryOutbox,
    OutgoingMail,
    RetryPolicy,
    UnsafeMailHeader,
    build_message,
    check_headers,
)

NOW = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
SENDER = "Bastion <bastion@example.com>"


@pytest.mark.parametrize(
    ("mail", "field"),
    [
        (OutgoingMail("a@example.com", "Hi\r\nBcc: evil@example.net", "b"), "subject"),
        (OutgoingMail("a@example.com\r\nBcc: evil@example.net", "Hi", "b"), "to"),
        (OutgoingMail("a@example.com", "Hi", "b", to_name="Al\nBcc: evil@example.net"), "to_name"),
        (OutgoingMail("a@example.com>, evil@example.net", "Hi", "b"), "to"),
    ],
)
def test_header_injection_is_refused(mail, field):
    with pytest.raises(UnsafeMailHeader) as caught:
        build_message(mail, sender=SENDER, now=NOW)
    assert caught.value.details == {"field": field}
    # The outbox's cheap check (run in the request) refuses exactly the same.
    with pytest.raises(UnsafeMailHeader) as checked:
        check_headers(mail)
    assert checked.value.details == {"field": field}


def test_retries_back_off_exponentially_up_to_the_cap():
    retry = RetryPolicy(max_attempts=12, base=timedelta(seconds=30), cap=timedelta(hours=1))
    delays = [retry.delay_after(n).total_seconds() for n in range(1, 11)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]
    assert retry.delay_after(10_000) == timedelta(hours=1)


def test_a_display_name_with_separators_cannot_add_a_recipient():
    mail = OutgoingMail("a@example.com", "Hi", "b", to_name="Eve, <evil@example.net>")
    parsed = email.message_from_bytes(
        build_message(mail, sender=SENDER, now=NOW).as_bytes(), policy=email.policy.default
    )
    assert [a.addr_spec for a in parsed["To"].addresses] == ["a@example.com"]


def test_an_unsafe_sender_is_refused_at_construction(tmp_path):
    with pytest.raises(UnsafeMailHeader):
        DirectoryOutbox(directory=tmp_path, sender="Bastion <b@example.com>\r\nBcc: x@y.z")


def test_the_directory_outbox_writes_owner_only_eml_files_with_links_intact(tmp_path):
    outbox = DirectoryOutbox(directory=tmp_path / "mail", sender=SENDER)
    link = "https://bastion.example.com/reset-password#token=" + "A" * 43
    outbox.send(OutgoingMail("a@example.com", "Reset", f"Go to\n{link}\n"), now=NOW)
    (written,) = (tmp_path / "mail").iterdir()
    assert written.suffix == ".eml"
    assert written.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "mail").stat().st_mode & 0o777 == 0o700
    assert link.encode() in written.read_bytes()
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Reset"
    assert parsed["Auto-Submitted"] == "auto-generated"
