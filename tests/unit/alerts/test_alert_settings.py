"""Alert sink settings refuse what would leak or mislead: plain HTTP off the machine, weak webhook
secrets, duplicate names, an incoherent backoff."""

import pytest
from pydantic import ValidationError

from bastion.settings import AlertsSettings

SECRET = "k" * 32


def _webhook(url, secret=SECRET, name="soc"):
    return {"kind": "webhook", "name": name, "url": url, "secret": secret}


@pytest.mark.parametrize(
    "url",
    [
        "https://soc.example.com/hook",
        "http://127.0.0.1:8080/hook",
        "http://127.8.9.10/hook",
        "http://[::1]:9000/hook",
        "http://localhost/hook",
    ],
)
def test_https_anywhere_and_http_only_to_loopback_are_accepted(url):
    assert AlertsSettings(sinks=[_webhook(url)]).sinks[0].url == url


@pytest.mark.parametrize(
    "url",
    [
        "http://soc.example.com/hook",
        "http://127.0.0.1.evil.example/hook",
        "http://10.0.0.5/hook",
        "ftp://soc.example.com/",
        "https:///nohost",
        "soc.example.com/hook",
    ],
)
def test_plain_http_off_the_machine_and_other_schemes_are_refused(url):
    with pytest.raises(ValidationError):
        AlertsSettings(sinks=[_webhook(url)])


def test_a_short_webhook_secret_is_refused_and_a_good_one_never_shown():
    with pytest.raises(ValidationError, match="32 characters"):
        AlertsSettings(sinks=[_webhook("https://soc.example.com/", secret="short")])
    settings = AlertsSettings(sinks=[_webhook("https://soc.example.com/")])
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()


def test_duplicate_sink_names_and_an_incoherent_backoff_are_refused():
    stdout = {"kind": "stdout", "name": "console"}
    with pytest.raises(ValidationError, match="unique"):
        AlertsSettings(sinks=[stdout, stdout])
    with pytest.raises(ValidationError, match="retry_base"):
        AlertsSettings(retry_base_seconds=100, retry_max_seconds=10)
    with pytest.raises(ValidationError):
        AlertsSettings(sinks=[{"kind": "email", "name": "x", "recipients": []}])
    with pytest.raises(ValidationError):
        AlertsSettings(sinks=[{"kind": "carrier-pigeon", "name": "x"}])
