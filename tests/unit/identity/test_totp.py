"""TOTP against the RFC 6238 vector, the ±1 step window and replay refusal; recovery codes."""

from datetime import UTC, datetime

import pyotp

from bastion.identity import recovery, totp

# RFC 6238 Appendix B, SHA-1 seed "12345678901234567890"; T = 59 s -> 94287082 (8 digits).
RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
AT_59 = datetime.fromtimestamp(59, UTC)


def test_the_rfc_6238_vector_matches_in_six_digits():
    assert totp.matching_step(RFC_SECRET, "287082", now=AT_59, last_used_step=None) == 1


def test_one_step_of_drift_either_way_is_accepted_and_no_more():
    secret = totp.new_secret()
    now = datetime(2026, 11, 22, 10, 0, 15, tzinfo=UTC)
    step = totp.step_at(now)
    code = pyotp.TOTP(secret)
    for offset in (-1, 0, 1):
        assert totp.matching_step(
            secret, code.at(int(now.timestamp()) + 30 * offset), now=now, last_used_step=None
        ) == (step + offset)
    for offset in (-2, 2):
        assert (
            totp.matching_step(
                secret, code.at(int(now.timestamp()) + 30 * offset), now=now, last_used_step=None
            )
            is None
        )


def test_a_code_for_a_step_already_used_is_refused():
    secret = totp.new_secret()
    now = datetime(2026, 11, 22, 10, 0, 15, tzinfo=UTC)
    code = pyotp.TOTP(secret).at(now)
    step = totp.matching_step(secret, code, now=now, last_used_step=None)
    assert totp.matching_step(secret, code, now=now, last_used_step=step) is None


def test_malformed_codes_are_refused_without_error():
    for code in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦"):
        assert totp.matching_step(RFC_SECRET, code, now=AT_59, last_used_step=None) is None


def test_secrets_uris_and_qr_codes():
    secret = totp.new_secret()
    assert len(secret) == 32
    uri = totp.provisioning_uri(secret, account="alice@example.com")
    assert uri.startswith("otpauth://totp/Bastion:alice%40example.com?secret=")
    assert "issuer=Bastion" in uri
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg")
    assert "<script" not in svg


def test_recovery_codes_are_ten_distinct_80_bit_codes_typed_forgivingly():
    codes = recovery.new_codes()
    assert len(set(codes)) == 10
    for code in codes:
        assert len(recovery.canonical(code)) == 16
        assert recovery.looks_like_recovery_code(code.upper().replace("-", " "))
    assert not recovery.looks_like_recovery_code("123456")
