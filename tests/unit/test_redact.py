from bastion.kernel.redact import REDACTED, redact_mapping, redact_url


def test_url_password_is_hidden_and_the_rest_kept():
    assert redact_url("postgresql://app:hunter2@db:5432/x") == (
        f"postgresql://app:{REDACTED}@db:5432/x"
    )
    assert redact_url("sqlite:///var/bastion.db") == "sqlite:///var/bastion.db"


def test_nested_secret_keys_are_masked():
    cleaned = redact_mapping({"crypto": {"key_base64": "abc", "provider": "local"}, "token": "t"})
    assert cleaned == {"crypto": {"key_base64": REDACTED, "provider": "local"}, "token": REDACTED}
