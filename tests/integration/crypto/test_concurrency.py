"""Several processes' keyrings on one database at once (threads stand in for processes: each
keyring has its own caches and connections, as separate processes would)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.integration.crypto.conftest import TENANT

WORKERS = 4


def test_concurrent_rotations_leave_exactly_one_active_version(keyring, make_keyring):
    keyrings = [make_keyring() for _ in range(WORKERS)]

    def rotate_three_times(own):
        return [own.rotate(TENANT).version for _ in range(3)]

    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(rotate_three_times, keyrings))
    made = sorted(version for result in results for version in result)
    assert made == list(range(2, 2 + 3 * WORKERS))
    versions = keyring.key_versions(TENANT)
    assert [v.status for v in versions].count("active") == 1
    assert versions[-1].status == "active"


def test_concurrent_sealing_respects_the_per_key_limit(keyring, make_keyring):
    limit, block, per_worker = 40, 8, 60
    keyrings = [
        make_keyring(max_encryptions_per_key=limit, reservation_block=block) for _ in range(WORKERS)
    ]

    def seal_many(args):
        index, own = args
        return [
            own.seal(TENANT, purpose="p", record_id=f"{index}-{i}", plaintext=b"v")
            for i in range(per_worker)
        ]

    with ThreadPoolExecutor(WORKERS) as pool:
        sealed = [value for batch in pool.map(seal_many, enumerate(keyrings)) for value in batch]
    per_version: dict[int, int] = {}
    for value in sealed:
        version = int.from_bytes(value[2:6], "big")
        per_version[version] = per_version.get(version, 0) + 1
    assert all(count <= limit for count in per_version.values()), per_version
    reserved = {v.version: v.encryptions_reserved for v in keyring.key_versions(TENANT)}
    for version, count in per_version.items():
        assert count <= reserved[version]
    fresh = make_keyring()
    for index in range(WORKERS):
        for i in range(per_worker):
            value = sealed[index * per_worker + i]
            assert fresh.open(TENANT, purpose="p", record_id=f"{index}-{i}", sealed=value) == b"v"


def test_concurrent_provisioning_creates_one_key(make_keyring):
    keyrings = [make_keyring() for _ in range(WORKERS)]
    keyrings[0].initialise()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(pool.map(lambda own: own.provision_tenant("fresh-tenant"), keyrings))
    assert {r.version for r in results} == {1}
    assert len(keyrings[0].key_versions("fresh-tenant")) == 1
    blind = {own.blind_index("fresh-tenant", field="f", value="v") for own in keyrings}
    assert len(blind) == 1
