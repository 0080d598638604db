"""Password hashing and the password policy: each rule refuses with its own name."""

import pytest
from argon2 import Type, extract_parameters

from bastion.identity.errors import (
    PasswordFromContext,
    PasswordRejected,
    PasswordReused,
    PasswordTooCommon,
    PasswordTooLong,
    PasswordTooShort,
    PasswordTooWeak,
)
from bastion.identity.passwords import (
    Argon2Parameters,
    PasswordHasher,
    PasswordPolicy,
    check_not_reused,
    common_passwords,
    is_common_password,
)

CHEAP = Argon2Parameters(memory_kib=64, time_cost=1, parallelism=1)
POLICY = PasswordPolicy(min_length=12, max_length=256, min_score=3, context_words=("bastion",))
GOOD = "correct horse battery staple"


def _refusal(password, **kwargs):
    with pytest.raises(PasswordRejected) as caught:
        POLICY.check(password, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("password", "error", "code", "rule"),
    [
        ("eleven chrs", PasswordTooShort, "identity.password_too_short", "min_length"),
        ("x" * 257, PasswordTooLong, "identity.password_too_long", "max_length"),
        ("password1234", PasswordTooCommon, "identity.password_too_common", "common"),
        ("PASSWORD1234", PasswordTooCommon, "identity.password_too_common", "common"),
        ("mountainmountain", PasswordTooWeak, "identity.password_too_weak", "strength"),
        ("Bastion2025!!", PasswordFromContext, "identity.password_from_context", "context"),
    ],
)
def test_each_policy_rule_refuses_with_its_own_code(password, error, code, rule):
    refused = _refusal(password)
    assert type(refused) is error
    assert refused.code == code
    assert refused.details["rule"] == rule
    assert refused.details["field"] == "password"
    assert password not in str(refused.details)


def test_the_users_own_email_and_name_do_not_make_a_password_strong():
    refused = _refusal("alice.smith2026", user_inputs=["alice.smith@example.com", "Alice Smith"])
    assert type(refused) is PasswordFromContext
    # The same shape without the user's data passes.
    POLICY.check("quokka.umbra2026", user_inputs=["alice.smith@example.com"])


def test_long_unicode_and_spaced_passwords_are_accepted_as_typed():
    POLICY.check(GOOD)
    POLICY.check("Ünïcödé pässwörds wörk too, with späces ☃")
    POLICY.check("k" + "q7Zp!m3x" * 12)  # 97 characters: past zxcvbn's 72-character guard
    POLICY.check("z" * 1 + "Vb8#qLm2!xR4tY" * 18)  # 253 characters


def test_the_shipped_common_password_list_has_at_least_100000_entries():
    passwords = common_passwords()
    assert len(passwords) >= 100_000
    assert "123456" in passwords
    assert all(p == p.lower() for p in list(passwords)[:1000])
    assert is_common_password("Qwertyuiop123")
    assert not is_common_password(GOOD)


def test_reuse_of_a_recent_password_is_refused():
    hasher = PasswordHasher(CHEAP)
    recent = [hasher.hash(f"old password number {n}") for n in range(5)]
    with pytest.raises(PasswordReused) as caught:
        check_not_reused(hasher, "old password number 3", recent)
    assert caught.value.code == "identity.password_reused"
    check_not_reused(hasher, "a brand new passphrase", recent)


def test_hashes_are_argon2id_with_the_configured_parameters():
    hashed = PasswordHasher(Argon2Parameters(memory_kib=128, time_cost=2, parallelism=1)).hash(GOOD)
    assert hashed.startswith("$argon2id$v=19$m=128,t=2,p=1$")


def test_verify_accepts_the_password_exactly_as_typed_only():
    hasher = PasswordHasher(CHEAP)
    hashed = hasher.hash(GOOD)
    assert hasher.verify(hashed, GOOD)
    assert not hasher.verify(hashed, GOOD.upper())
    assert not hasher.verify(hashed, GOOD[:-1])
    assert not hasher.verify("not a hash", GOOD)


def test_a_change_of_parameters_marks_old_hashes_for_rehash():
    old = PasswordHasher(CHEAP)
    new = PasswordHasher(Argon2Parameters(memory_kib=128, time_cost=2, parallelism=1))
    hashed = old.hash(GOOD)
    assert not old.needs_rehash(hashed)
    assert new.needs_rehash(hashed)
    assert new.verify(hashed, GOOD)  # old hashes still verify until rehashed at login
    assert not new.needs_rehash(new.hash(GOOD))
    assert new.needs_rehash("garbage")


def test_the_dummy_verification_does_the_same_argon2_work_as_a_real_one(monkeypatch):
    # Same work, not a timed race (a timing assertion fails on a loaded machine): the dummy
    # verification must run a full argon2id verification with exactly the stored parameters.
    hasher = PasswordHasher(Argon2Parameters(memory_kib=8192, time_cost=2, parallelism=1))
    stored = hasher.hash(GOOD)
    verified: list[str] = []
    real_verify = PasswordHasher.verify

    def spy(self, stored_hash, password):
        verified.append(stored_hash)
        return real_verify(self, stored_hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", spy)
    hasher.verify_dummy("wrong password")
    (dummy_hash,) = verified
    assert dummy_hash != stored
    assert extract_parameters(dummy_hash) == extract_parameters(stored)
    assert extract_parameters(stored).type is Type.ID
