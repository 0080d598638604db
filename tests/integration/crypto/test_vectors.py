"""The sealed format against a fixed vector (tests/vectors/sealed_v1.json): a value sealed by any
earlier Bastion must open in this one, and what this one seals must have exactly that layout."""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto.envelope import SLOT_INDEX
from bastion.crypto.repository import add_key, tenant_owner

VECTOR = json.loads((Path(__file__).parents[2] / "vectors" / "sealed_v1.json").read_text())


def _keyring_holding_the_vector_key(make_keyring, clock):
    keyring = make_keyring()
    keyring.initialise()
    owner = tenant_owner(VECTOR["tenant"])
    with keyring.uow.begin() as session:
        add_key(
            session,
            owner,
            version=VECTOR["key_version"],
            wrapped_key=keyring.wrap_for(owner, 1, bytes.fromhex(VECTOR["data_key_hex"])),
            wrapped_index_key=keyring.wrap_for(owner, 1, bytes(32), slot=SLOT_INDEX),
            kek_id=keyring.provider.key_id,
            now=clock.now(),
        )
    return keyring


def test_the_v1_vector_opens(make_keyring, clock):
    keyring = _keyring_holding_the_vector_key(make_keyring, clock)
    opened = keyring.open(
        VECTOR["tenant"],
        purpose=VECTOR["purpose"],
        record_id=VECTOR["record_id"],
        sealed=bytes.fromhex(VECTOR["sealed_hex"]),
    )
    assert opened == bytes.fromhex(VECTOR["plaintext_hex"])


def test_new_seals_have_the_v1_layout(make_keyring, clock):
    keyring = _keyring_holding_the_vector_key(make_keyring, clock)
    plaintext = bytes.fromhex(VECTOR["plaintext_hex"])
    sealed = keyring.seal(
        VECTOR["tenant"],
        purpose=VECTOR["purpose"],
        record_id=VECTOR["record_id"],
        plaintext=plaintext,
    )
    vector = bytes.fromhex(VECTOR["sealed_hex"])
    assert sealed[:6] == vector[:6]
    nonce = sealed[6:18]
    # Decrypted independently of Bastion's code, with the documented associated data.
    aead = AESGCM(bytes.fromhex(VECTOR["data_key_hex"]))
    assert (
        aead.decrypt(nonce, sealed[18:], bytes.fromhex(VECTOR["associated_data_hex"])) == plaintext
    )
