"""Key management behind the keyring: provisioning, rotation, re-encryption, retirement,
crypto-shredding and master-key (KEK) rotation.

Every operation commits its own short transactions and is safe to repeat: re-running it after a
crash (even ``kill -9``) continues where it stopped and never makes data unreadable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final, NoReturn

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.crypto import envelope
from bastion.crypto import repository as repo
from bastion.crypto.envelope import (
    KIND_TENANT,
    SLOT_INDEX,
    SLOT_KEY,
    SYSTEM_DATA,
    SYSTEM_MAC,
    SYSTEM_SIGNING,
    MalformedSealedError,
)
from bastion.crypto.errors import (
    KeyNotProvisionedError,
    KeyRetirementRefusedError,
    KeyringConflictError,
    KeyUnwrapError,
    MasterKeyMismatchError,
    TenantErasedError,
)
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.models import (
    STATUS_ACTIVE,
    STATUS_RETIRED,
    SYSTEM_JOB_OWNER,
    ReencryptionJob,
    SystemKey,
    TenantKey,
)
from bastion.crypto.primitives import hkdf_sha256, new_data_key, new_signing_seed
from bastion.crypto.reencrypt import ReencryptionTarget
from bastion.crypto.repository import KeyRow, Owner, system_owner, tenant_owner
from bastion.crypto.types import ErasureReceipt, KekRotationReport, KeyVersion, ReencryptionReport
from bastion.errors import InvalidInput, StartupError
from bastion.kernel.clock import as_utc

if TYPE_CHECKING:
    from bastion.crypto.keyring import Keyring

MAX_TENANT_ID_CHARS: Final = 36
MAX_TARGET_NAME_CHARS: Final = 64
CONFLICT_RETRIES: Final = 3
# Every lost round means another rotation won and committed, so this bounds only a stampede.
ROTATION_RETRIES: Final = 20
KEK_BATCH_ROWS: Final = 500
BLIND_INDEX_INFO: Final = b"bastion:blind-index:v1"

KekProgress = Callable[[int, int], None]
ReencryptProgress = Callable[[ReencryptionReport], None]


def check_tenant_id(tenant: str) -> None:
    """InvalidInput unless ``tenant`` fits the 36-character tenant_id columns."""
    if not tenant or len(tenant) > MAX_TENANT_ID_CHARS:
        raise InvalidInput(f"a tenant id has 1 to {MAX_TENANT_ID_CHARS} characters")
    if tenant == SYSTEM_JOB_OWNER:
        raise InvalidInput(f"{SYSTEM_JOB_OWNER!r} is reserved for the system's own keys")


def _version_info(owner: Owner, row: KeyRow) -> KeyVersion:
    return KeyVersion(
        owner=owner.name,
        version=row.version,
        status=row.status,
        encryptions_reserved=row.encryptions,
        created_at=as_utc(row.created_at),
        superseded_at=as_utc(row.superseded_at) if row.superseded_at else None,
        retired_at=as_utc(row.retired_at) if row.retired_at else None,
    )


class KeyAdministration:
    """The management half of ``Keyring``; use it through the keyring's methods."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._targets: dict[str, ReencryptionTarget] = {}

    def _record(
        self, session: Session, action: str, owner: Owner | None, **details: str | int
    ) -> None:
        recorder = self._keyring.recorder
        if recorder is None:
            return
        tenant = owner.name if owner is not None and owner.kind == KIND_TENANT else None
        if owner is not None:
            details = {"owner": owner.label, **details}
        recorder(session, action=action, tenant=tenant, details=details)

    # ----------------------------------------------------------------- system keys
    def initialise(self) -> list[str]:
        """Create whichever of the system keys (data, MAC root, signing) is missing, after
        checking that the configured master key matches any that exist (MasterKeyMismatchError).
        Idempotent; returns the names created."""
        keyring = self._keyring
        with keyring.uow.begin() as session:
            initialised = repo.active_row(session, system_owner(SYSTEM_DATA)) is not None
        if initialised:
            self.verify_master_key()
        created = []
        now = keyring.clock.now()
        with keyring.uow.begin() as session:
            for name in (SYSTEM_DATA, SYSTEM_MAC, SYSTEM_SIGNING):
                owner = system_owner(name)
                if repo.key_rows(session, owner):
                    continue
                public: bytes | None = None
                if name == SYSTEM_SIGNING:
                    secret, public = new_signing_seed()
                else:
                    secret = new_data_key()
                repo.add_key(
                    session,
                    owner,
                    version=1,
                    wrapped_key=keyring.wrap_for(owner, 1, secret),
                    kek_id=keyring.provider.key_id,
                    now=now,
                    public_key=public,
                )
                self._record(session, "key.created", owner, version=1)
                created.append(name)
        return created

    def verify_master_key(self) -> None:
        """Check that the configured master key is the one wrapping this keyring, by unwrapping
        the system data key. Raises MasterKeyMismatchError (one line, nothing changed) or
        StartupError if the keyring was never initialised."""
        keyring = self._keyring
        current = keyring.provider.key_id
        with keyring.uow.begin() as session:
            in_use = repo.kek_ids_in_use(session)
            row = repo.active_row(session, system_owner(SYSTEM_DATA))
        if row is None:
            raise StartupError("the keyring has no system keys; run `bastion init`")
        others = sorted(in_use - {current})
        if others and current in in_use:
            raise MasterKeyMismatchError(
                f"a master key rotation did not finish: some keys are wrapped by "
                f"{', '.join(others)}, others by the configured key {current}; with the old master "
                f"key configured, rerun `bastion keys rotate-kek --new-key-file <new key>`"
            )
        try:
            keyring.provider.unwrap(
                row.wrapped_key or b"",
                context=envelope.wrap_context("system", SYSTEM_DATA, row.version, SLOT_KEY),
            )
        except KeyUnwrapError:
            wrapped_by = ", ".join(sorted(in_use)) or "an unknown key"
            raise MasterKeyMismatchError(
                f"the master key in {keyring.provider.description} (id {current}) does not match "
                f"the keyring, whose keys are wrapped by master key {wrapped_by}; configure the "
                f"master key that belongs to this database (nothing was changed)"
            ) from None

    # ----------------------------------------------------------------- tenants
    def provision_tenant(self, tenant: str) -> KeyVersion:
        """Create version 1 of the tenant's data key (and its blind-index key) unless it exists.

        Idempotent and safe under concurrency. TenantErasedError if the tenant was shredded.
        """
        check_tenant_id(tenant)
        owner = tenant_owner(tenant)
        keyring = self._keyring
        for _ in range(CONFLICT_RETRIES):
            try:
                with keyring.uow.begin() as session:
                    if repo.is_erased(session, tenant):
                        raise TenantErasedError(f"tenant {tenant} was erased; its data is gone")
                    existing = repo.active_row(session, owner)
                    if existing is not None:
                        return _version_info(owner, existing)
                    data_key = new_data_key()
                    # The blind-index key is derived once from the first data key and then
                    # carried forward, so indexes stay valid across rotation and retirement.
                    index_key = hkdf_sha256(data_key, info=BLIND_INDEX_INFO)
                    row = repo.add_key(
                        session,
                        owner,
                        version=1,
                        wrapped_key=keyring.wrap_for(owner, 1, data_key),
                        wrapped_index_key=keyring.wrap_for(owner, 1, index_key, slot=SLOT_INDEX),
                        kek_id=keyring.provider.key_id,
                        now=keyring.clock.now(),
                    )
                    self._record(session, "key.created", owner, version=1)
                    return _version_info(owner, row)
            except IntegrityError:
                continue  # provisioned concurrently: read the winner's row
        raise KeyringConflictError(f"the data key of tenant {tenant} kept changing; retry")

    def key_versions(self, tenant: str) -> list[KeyVersion]:
        """Every version of the tenant's data key, oldest first (no key material)."""
        owner = tenant_owner(tenant)
        with self._keyring.uow.begin() as session:
            return [_version_info(owner, row) for row in repo.key_rows(session, owner)]

    def rotate(self, tenant: str) -> KeyVersion:
        """Add a new version of the tenant's data key and make it the one new writes use.

        Older versions keep decrypting until retired. Raises KeyNotProvisionedError,
        TenantErasedError, KeyringConflictError (concurrent rotations kept winning).
        """
        return self._rotate_owner(tenant_owner(tenant))

    def rotate_system_key(self) -> KeyVersion:
        """Add a new version of the system data key (as ``rotate`` for a tenant)."""
        return self._rotate_owner(system_owner(SYSTEM_DATA))

    def _rotate_owner(self, owner: Owner) -> KeyVersion:
        keyring = self._keyring
        for _ in range(ROTATION_RETRIES):
            info: KeyVersion | None = None
            try:
                with keyring.uow.begin() as session:
                    # Lock the active row first (an UPDATE), so a concurrent rotation waits.
                    locked = repo.reserve_encryptions(session, owner, 0)
                    if locked is None:
                        # PostgreSQL re-checks a waiting UPDATE against the winner's row (now
                        # superseded) and matches nothing; the winner's new version is only
                        # visible to the next transaction, so retry unless there is none.
                        if repo.active_row(session, owner) is None:
                            self._raise_missing(session, owner)
                    else:
                        new = self.add_version(
                            session, owner, repo.key_row(session, owner, locked[0])
                        )
                        info = _version_info(owner, new)
                        self._record(session, "key.rotated", owner, version=new.version)
            except IntegrityError:
                continue  # SQLite or a fresh owner: the partial unique index caught the race
            if info is not None:
                keyring.forget(owner)
                return info
        raise KeyringConflictError(f"the data key of {owner.label} kept changing; retry")

    @staticmethod
    def _raise_missing(session: Session, owner: Owner) -> NoReturn:
        if owner.kind == KIND_TENANT and repo.is_erased(session, owner.name):
            raise TenantErasedError(f"tenant {owner.name} was erased; its data is gone")
        raise KeyNotProvisionedError(f"no data key was provisioned for {owner.label}")

    def add_version(self, session: Session, owner: Owner, current: KeyRow | None) -> KeyRow:
        """Within ``session``: supersede ``current`` and insert the next version, active."""
        if current is None:
            self._raise_missing(session, owner)
        keyring = self._keyring
        now = keyring.clock.now()
        version = max(row.version for row in repo.key_rows(session, owner)) + 1
        wrapped_index: bytes | None = None
        if owner.kind == KIND_TENANT:
            index_key = keyring.unwrap_row(current, owner, slot=SLOT_INDEX)
            wrapped_index = keyring.wrap_for(owner, version, index_key, slot=SLOT_INDEX)
        repo.supersede(session, current, now=now)
        return repo.add_key(
            session,
            owner,
            version=version,
            wrapped_key=keyring.wrap_for(owner, version, new_data_key()),
            wrapped_index_key=wrapped_index,
            kek_id=keyring.provider.key_id,
            now=now,
        )

    # ----------------------------------------------------------------- re-encryption
    def register_target(self, target: ReencryptionTarget) -> None:
        """Make ``target``'s sealed values part of re-encryption and of retirement checks."""
        if not target.name or len(target.name) > MAX_TARGET_NAME_CHARS:
            raise InvalidInput(f"a target name has 1 to {MAX_TARGET_NAME_CHARS} characters")
        self._targets[target.name] = target

    @property
    def targets(self) -> Sequence[ReencryptionTarget]:
        return list(self._targets.values())

    def reencrypt(
        self, tenant: str, *, progress: ReencryptProgress | None = None
    ) -> list[ReencryptionReport]:
        """Re-seal every value of ``tenant`` older than its active version, in every registered
        target. Progress is persisted after each batch, so after a crash (``kill -9``) running it
        again resumes; every value stays readable throughout (old versions are not touched)."""
        owner = tenant_owner(tenant)
        with self._keyring.uow.begin() as session:
            active = repo.active_row(session, owner)
            if active is None:
                self._raise_missing(session, owner)
            to_version = active.version
        # A long-running process may hold an older active version in its cache: drop it, so
        # every value re-sealed here uses to_version or newer.
        self._keyring.forget(owner)
        return [
            self._reencrypt_target(tenant, target, to_version, progress)
            for target in self._targets.values()
        ]

    def start_job(self, tenant: str, target: str, to_version: int) -> ReencryptionJob:
        now = self._keyring.clock.now()
        with self._keyring.uow.begin() as session:
            job = repo.job(session, tenant, target)
            if job is None:
                job = ReencryptionJob(
                    tenant_id=tenant,
                    target=target,
                    to_version=to_version,
                    cursor=None,
                    rows_done=0,
                    finished=False,
                    started_at=now,
                    updated_at=now,
                )
                session.add(job)
            elif job.to_version != to_version or job.finished:
                # Rotated again since the last pass: start over towards the newer version. Or
                # asked again after a finished pass: a process still writing with the superseded
                # version from its cache (up to one cache lifetime) may have added old values
                # behind the cursor, and retirement tells the operator to run the pass again.
                job.to_version, job.cursor, job.rows_done = to_version, None, 0
                job.finished, job.started_at, job.updated_at = False, now, now
            session.flush()
            session.expunge(job)
        return job

    def _reencrypt_target(
        self,
        tenant: str,
        target: ReencryptionTarget,
        to_version: int,
        progress: ReencryptProgress | None,
    ) -> ReencryptionReport:
        keyring = self._keyring
        job = self.start_job(tenant, target.name, to_version)
        cursor, done, scanned, changed = job.cursor, job.rows_done, 0, 0
        finished = job.finished
        while not finished:
            items = target.scan(tenant, after=cursor, limit=keyring.batch_rows)
            if not items:
                finished = True
            else:
                replacements = []
                for item in items:
                    if self._sealed_version(tenant, item.purpose, item.record_id, item.sealed) >= (
                        to_version
                    ):
                        continue  # already done (e.g. by the pass that was killed)
                    plaintext = keyring.open(
                        tenant, purpose=item.purpose, record_id=item.record_id, sealed=item.sealed
                    )
                    resealed = keyring.seal(
                        tenant, purpose=item.purpose, record_id=item.record_id, plaintext=plaintext
                    )
                    replacements.append((item, resealed))
                if replacements:
                    changed += target.store(tenant, replacements)
                cursor = items[-1].record_id
                scanned += len(items)
                done += len(replacements)
            if not self.save_progress(
                tenant, target.name, to_version=to_version, cursor=cursor, done=done, fin=finished
            ):
                break  # shredded or rotated again meanwhile: that pass owns the job now
            if progress is not None:
                progress(
                    ReencryptionReport(target.name, to_version, scanned, changed, done, finished)
                )
        return ReencryptionReport(target.name, to_version, scanned, changed, done, finished)

    def _sealed_version(self, tenant: str, purpose: str, record_id: str, sealed: bytes) -> int:
        try:
            head = envelope.parse_header(sealed)
        except MalformedSealedError as exc:
            raise self._keyring.integrity_error(tenant, purpose, record_id, str(exc)) from None
        return head.version

    def save_progress(
        self,
        tenant: str,
        target: str,
        *,
        to_version: int,
        cursor: str | None,
        done: int,
        fin: bool,
    ) -> bool:
        with self._keyring.uow.begin() as session:
            job = repo.job(session, tenant, target)
            if job is None or job.to_version != to_version:
                return False
            job.cursor, job.rows_done, job.finished = cursor, done, fin
            job.updated_at = self._keyring.clock.now()
        return True

    def retire(self, tenant: str, version: int) -> KeyVersion:
        """Destroy data-key ``version`` of ``tenant`` once nothing uses it. Idempotent.

        Refused (KeyRetirementRefusedError, saying what to do) while it is the active version,
        while a re-encryption pass is unfinished, while any registered target still holds a value
        sealed with it, or within two cache lifetimes of its supersession (another process may
        still be writing with it from its cache).
        """
        owner = tenant_owner(tenant)
        keyring = self._keyring
        with keyring.uow.begin() as session:
            row = self._retirable(session, owner, version)
            if row.status == STATUS_RETIRED:
                return _version_info(owner, row)
        for target in self._targets.values():
            remaining = target.count_sealed_with(tenant, version)
            if remaining:
                raise KeyRetirementRefusedError(
                    f"{remaining} values in {target.name} still use version {version} of tenant "
                    f"{tenant}; run `bastion keys reencrypt --tenant {tenant}` first"
                )
        with keyring.uow.begin() as session:
            row = self._retirable(session, owner, version)
            repo.retire(session, row, now=keyring.clock.now())
            info = _version_info(owner, row)
            self._record(session, "key.retired", owner, version=version)
        keyring.forget(owner)
        return info

    def _retirable(self, session: Session, owner: Owner, version: int) -> KeyRow:
        tenant = owner.name
        row = repo.key_row(session, owner, version)
        if row is None:
            if repo.is_erased(session, tenant):
                raise TenantErasedError(f"tenant {tenant} was erased; its data is gone")
            raise KeyRetirementRefusedError(f"tenant {tenant} has no data-key version {version}")
        if row.status == STATUS_RETIRED:
            return row
        if row.status == STATUS_ACTIVE:
            raise KeyRetirementRefusedError(
                f"version {version} is tenant {tenant}'s active data key; rotate it first"
            )
        settle = timedelta(seconds=2 * self._keyring.cache_ttl_seconds)
        superseded = as_utc(row.superseded_at or row.created_at)
        if self._keyring.clock.now() - superseded < settle:
            raise KeyRetirementRefusedError(
                f"version {version} of tenant {tenant} was superseded at "
                f"{superseded.isoformat()}; other processes may still use it from their "
                f"cache, retry after {(superseded + settle).isoformat()}"
            )
        if repo.running_jobs(session, tenant):
            raise KeyRetirementRefusedError(
                f"re-encryption of tenant {tenant} has not finished; run "
                f"`bastion keys reencrypt --tenant {tenant}` first"
            )
        return row

    # ----------------------------------------------------------------- crypto-shredding
    def shred_tenant(self, tenant: str) -> ErasureReceipt:
        """Destroy every data key of ``tenant`` and record it in the erasure ledger, in one
        transaction. Everything sealed for the tenant becomes unreadable for good (opening it
        raises TenantErasedError). Idempotent: a second call returns the first receipt."""
        check_tenant_id(tenant)
        keyring = self._keyring
        with keyring.uow.begin() as session:
            existing = repo.erasure(session, tenant)
            if existing is not None:
                return _receipt(existing.tenant_id, existing.erased_at, existing.versions_destroyed)
            _secure_delete(session)
            now = keyring.clock.now()
            versions = repo.destroy_tenant_keys(session, tenant, now=now)
            # On the system chain: the tenant's own chain outlives it, but nobody reads it for it.
            self._record(
                session, "tenant.shredded", None, tenant=tenant, versions_destroyed=versions
            )
        keyring.forget(tenant_owner(tenant))
        return _receipt(tenant, now, versions)

    def erasures(self) -> list[ErasureReceipt]:
        """The erasure ledger, oldest first: what a restore must replay."""
        with self._keyring.uow.begin() as session:
            return [
                _receipt(row.tenant_id, row.erased_at, row.versions_destroyed)
                for row in repo.erasures(session)
            ]

    def replay_erasures(self, receipts: Sequence[ErasureReceipt]) -> int:
        """Re-apply ledger entries (e.g. onto a restored backup); how many tenants it erased."""
        erased = 0
        keyring = self._keyring
        for receipt in receipts:
            with keyring.uow.begin() as session:
                if repo.is_erased(session, receipt.tenant):
                    continue
                _secure_delete(session)
                repo.destroy_tenant_keys(session, receipt.tenant, now=receipt.erased_at)
                self._record(session, "tenant.erasure_replayed", None, tenant=receipt.tenant)
            keyring.forget(tenant_owner(receipt.tenant))
            erased += 1
        return erased

    # ----------------------------------------------------------------- master key rotation
    def rotate_kek(
        self, new_provider: KeyProvider, *, progress: KekProgress | None = None
    ) -> KekRotationReport:
        """Rewrap every stored key (tenant, system, signing) from the current master key to
        ``new_provider``, ``KEK_BATCH_ROWS`` rows a transaction.

        Resumable and idempotent: each row records the id of the master key that wrapped it, and
        rows already under the new key are skipped. A row wrapped by neither key stops the run
        with MasterKeyMismatchError (nothing in that batch is changed). Afterwards the keyring
        uses ``new_provider``; the caller installs the new key where the settings point.
        """
        keyring = self._keyring
        old = keyring.provider
        new_provider.check()
        old_id, new_id = old.key_id, new_provider.key_id
        with keyring.uow.begin() as session:
            total = repo.count_not_wrapped_by(session, new_id)
        done = 0
        if progress is not None:
            progress(done, total)
        for model in (SystemKey, TenantKey):
            while True:
                with keyring.uow.begin() as session:
                    rows = repo.rows_not_wrapped_by(session, model, new_id, limit=KEK_BATCH_ROWS)
                    for row in rows:
                        _rewrap(row, old, new_provider, old_id=old_id, new_id=new_id)
                if not rows:
                    break
                done += len(rows)
                if progress is not None:
                    progress(done, total)
        if done:
            with keyring.uow.begin() as session:
                self._record(
                    session,
                    "key.master_rotated",
                    None,
                    old_key_id=old_id,
                    new_key_id=new_id,
                    rewrapped=done,
                )
        keyring.replace_provider(new_provider)
        return KekRotationReport(old_key_id=old_id, new_key_id=new_id, rewrapped=done, total=total)


def _rewrap(row: KeyRow, old: KeyProvider, new: KeyProvider, *, old_id: str, new_id: str) -> None:
    slots: tuple[str, ...]
    if isinstance(row, TenantKey):
        owner, slots = tenant_owner(row.tenant_id), ("wrapped_key", "wrapped_index_key")
    else:
        owner, slots = system_owner(row.name), ("wrapped_key",)
    if row.kek_id != old_id:
        raise MasterKeyMismatchError(
            f"{owner.label} key version {row.version} is wrapped by master key {row.kek_id}, "
            f"neither the configured one ({old_id}) nor the new one ({new_id})"
        )
    for attribute in slots:
        wrapped = getattr(row, attribute)
        if wrapped is None:
            continue
        slot = SLOT_INDEX if attribute == "wrapped_index_key" else SLOT_KEY
        context = envelope.wrap_context(owner.scope, owner.name, row.version, slot)
        try:
            key = old.unwrap(wrapped, context=context)
        except KeyUnwrapError:
            raise MasterKeyMismatchError(
                f"{owner.label} key version {row.version} does not unwrap under the configured "
                f"master key {old.description}; nothing in this batch was changed"
            ) from None
        setattr(row, attribute, new.wrap(key, context=context))
    row.kek_id = new_id


def _receipt(tenant: str, erased_at: datetime, versions: int) -> ErasureReceipt:
    return ErasureReceipt(tenant=tenant, erased_at=as_utc(erased_at), versions_destroyed=versions)


def _secure_delete(session: Session) -> None:
    # SQLite: overwrite deleted content with zeros instead of leaving it in free pages. It is a
    # per-connection setting and harmless to leave on for the pooled connection.
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("PRAGMA secure_delete=ON")
