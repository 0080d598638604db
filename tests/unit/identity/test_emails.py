import pytest

from bastion.identity.emails import normalise_email
from bastion.identity.errors import InvalidEmail


@pytest.mark.parametrize(
    ("raw", "value", "lookup"),
    [
        ("  Alice@Example.COM ", "Alice@example.com", "alice@example.com"),
        ("bob@bücher.de", "bob@xn--bcher-kva.de", "bob@xn--bcher-kva.de"),
        ("o.k+tag@sub.example.org", "o.k+tag@sub.example.org", "o.k+tag@sub.example.org"),
    ],
)
def test_addresses_are_trimmed_domain_lowercased_local_part_kept(raw, value, lookup):
    address = normalise_email(raw)
    assert address.value == value
    assert address.lookup_key == lookup


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "no-at-sign",
        "a@b",
        "a..b@example.com",
        ".a@example.com",
        '"quoted"@example.com',
        "a@-bad-.com",
        "two@at@example.com",
        "victim@example.com\r\nBcc: evil@example.net",
        "tab\t@example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_unusable_or_injecting_addresses_are_refused(raw):
    with pytest.raises(InvalidEmail) as caught:
        normalise_email(raw)
    assert caught.value.details == {"field": "email"}
