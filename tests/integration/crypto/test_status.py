"""The operator's view of the keyring on SQLite and PostgreSQL: versions, counters, unfinished
work, pages by tenant id, and never any key material."""

from __future__ import annotations

import dataclasses

from bastion.crypto import LocalKeyProvider, create_key_file
from bastion.crypto.status import ENCRYPTION_LIMIT
from tests.integration.crypto.conftest import OTHER_TENANT, TENANT


def test_a_fresh_keyring_reports_its_system_keys_and_tenants(keyring):
    status = keyring.status()
    assert status.master_key_id == keyring.provider.key_id
    assert status.keys_under_other_master_keys == 0
    assert sorted(key.owner for key in status.system_keys) == [
        "system:data",
        "system:mac",
        "system:signing",
    ]
    assert status.tenants_with_keys == 2
    assert status.superseded_tenant_versions == 0
    assert status.unfinished_reencryptions == 0
    assert status.encryption_limit == ENCRYPTION_LIMIT


def test_rotation_and_sealing_show_in_versions_and_counters(keyring):
    keyring.seal(TENANT, purpose="notes", record_id="r1", plaintext=b"hello")
    keyring.rotate(TENANT)
    (first, second) = keyring.tenant_key_statuses(after=None, limit=10)
    mine = first if first.tenant == TENANT else second
    assert mine.active_version == 2
    assert mine.pending_versions == (1,)
    assert mine.versions[0].encryptions_reserved >= 1  # reserved before use, in blocks
    status = keyring.status()
    assert status.superseded_tenant_versions == 1
    assert status.most_encryptions_reserved == 0  # of *active* keys: v2 sealed nothing yet
    keyring.seal(TENANT, purpose="notes", record_id="r2", plaintext=b"again")
    assert keyring.status().most_encryptions_reserved >= 1


def test_pages_go_by_tenant_id(keyring):
    ordered = sorted([TENANT, OTHER_TENANT])
    (page,) = keyring.tenant_key_statuses(after=None, limit=1)
    assert page.tenant == ordered[0]
    (following,) = keyring.tenant_key_statuses(after=page.tenant, limit=1)
    assert following.tenant == ordered[1]
    assert keyring.tenant_key_statuses(after=following.tenant, limit=1) == []
    assert len(keyring.tenant_key_statuses(after=None, limit=10_000)) == 2  # clamped, not refused


def test_an_unfinished_master_key_rotation_is_counted(keyring, make_keyring, tmp_path):
    other = tmp_path / "other.key"
    create_key_file(other)
    # Another keyring configured with a different master key sees every row as foreign.
    foreign = make_keyring(key_file=other)
    assert foreign.status().keys_under_other_master_keys == keyring.status().tenants_with_keys + 3
    assert LocalKeyProvider(key_file=other).key_id != keyring.provider.key_id


def test_no_key_material_in_any_status(keyring):
    keyring.rotate(TENANT)
    values = [keyring.status(), *keyring.tenant_key_statuses(after=None, limit=10)]
    text = repr(values)
    for field in ("wrapped", "public_key", "secret"):
        assert field not in text
    for value in values:
        for item in dataclasses.fields(value):
            assert not isinstance(getattr(value, item.name), bytes)
