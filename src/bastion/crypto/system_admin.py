"""The system data key's lifecycle, as tenants' data keys have it: rotation (``rotate_system_key``,
in ``admin``), then a resumable re-encryption of every registered system-sealed column, then
retirement of the old version once no column holds a value sealed with it.

Progress is kept in ``crypto_reencryption_jobs`` under the owner ``SYSTEM_JOB_OWNER`` (which no
tenant id may take), one job per column, saved after every batch: a pass killed with ``kill -9``
continues where it stopped, and every value stays readable throughout (old versions are only
destroyed by ``retire``, which counts first).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bastion.crypto import envelope
from bastion.crypto import repository as repo
from bastion.crypto.admin import KeyAdministration, ReencryptProgress
from bastion.crypto.envelope import KIND_SYSTEM, SYSTEM_DATA, MalformedSealedError
from bastion.crypto.errors import KeyNotProvisionedError, KeyRetirementRefusedError
from bastion.crypto.models import STATUS_ACTIVE, STATUS_RETIRED, SYSTEM_JOB_OWNER
from bastion.crypto.reencrypt import SealedItem
from bastion.crypto.repository import KeyRow, system_owner
from bastion.crypto.system_sealed import SystemSealedColumn
from bastion.crypto.types import KeyVersion, ReencryptionReport
from bastion.errors import InvalidInput
from bastion.kernel.clock import as_utc

if TYPE_CHECKING:
    from bastion.crypto.keyring import Keyring

_OWNER = system_owner(SYSTEM_DATA)
_REENCRYPT_HINT = "run `bastion keys reencrypt --system` first"


class SystemKeyAdministration:
    """Re-encryption and retirement for the system data key; use it through ``Keyring``."""

    def __init__(self, keyring: Keyring, admin: KeyAdministration) -> None:
        self._keyring = keyring
        self._admin = admin
        self._columns: dict[str, SystemSealedColumn] = {}

    def register(self, column: SystemSealedColumn) -> None:
        """Add ``column`` to re-encryption and to retirement checks (idempotent per column)."""
        known = self._columns.get(column.name)
        if known is not None and known.purpose != column.purpose:
            raise InvalidInput(f"{column.name} is already registered with another purpose")
        self._columns[column.name] = column

    @property
    def columns(self) -> Sequence[SystemSealedColumn]:
        return list(self._columns.values())

    def versions(self) -> list[KeyVersion]:
        """Every version of the system data key, oldest first (no key material)."""
        with self._keyring.uow.begin() as session:
            return [_info(row) for row in repo.key_rows(session, _OWNER)]

    # ----------------------------------------------------------------- re-encryption
    def reencrypt(self, *, progress: ReencryptProgress | None = None) -> list[ReencryptionReport]:
        """Re-seal every registered value older than the active system data key, column by
        column, saving the cursor after each batch. Run again after a crash to resume."""
        with self._keyring.uow.begin() as session:
            active = repo.active_row(session, _OWNER)
            if active is None:
                raise KeyNotProvisionedError("the keyring has no system data key; run bastion init")
            to_version = active.version
        # Drop a cached older active version, so every value re-sealed here is at to_version+.
        self._keyring.forget(_OWNER)
        return [self._column(column, to_version, progress) for column in self._columns.values()]

    def _column(
        self, column: SystemSealedColumn, to_version: int, progress: ReencryptProgress | None
    ) -> ReencryptionReport:
        keyring, admin = self._keyring, self._admin
        job = admin.start_job(SYSTEM_JOB_OWNER, column.name, to_version)
        cursor, done, scanned, changed = job.cursor, job.rows_done, 0, 0
        finished = job.finished
        while not finished:
            items = column.scan(after=cursor, limit=keyring.batch_rows)
            if not items:
                finished = True
            else:
                replacements = [
                    (item, self._reseal(item))
                    for item in items
                    if self._version(item) < to_version  # else done, e.g. by a killed pass
                ]
                if replacements:
                    changed += column.store(replacements)
                cursor = items[-1].record_id
                scanned += len(items)
                done += len(replacements)
            saved = admin.save_progress(
                SYSTEM_JOB_OWNER,
                column.name,
                to_version=to_version,
                cursor=cursor,
                done=done,
                fin=finished,
            )
            if not saved:
                break  # rotated again meanwhile: the newer pass owns the job now
            if progress is not None:
                progress(
                    ReencryptionReport(column.name, to_version, scanned, changed, done, finished)
                )
        return ReencryptionReport(column.name, to_version, scanned, changed, done, finished)

    def _reseal(self, item: SealedItem) -> bytes:
        keyring = self._keyring
        plaintext = keyring.open_system(
            purpose=item.purpose, record_id=item.record_id, sealed=item.sealed
        )
        return keyring.seal_system(
            purpose=item.purpose, record_id=item.record_id, plaintext=plaintext
        )

    def _version(self, item: SealedItem) -> int:
        try:
            head = envelope.parse_header(item.sealed)
        except MalformedSealedError as exc:
            raise self._keyring.system_integrity_error(
                item.purpose, item.record_id, str(exc)
            ) from None
        if head.kind != KIND_SYSTEM:
            raise self._keyring.system_integrity_error(
                item.purpose,
                item.record_id,
                f"not sealed with a system data key (kind {head.kind})",
            )
        return head.version

    # ----------------------------------------------------------------- retirement
    def retire(self, version: int) -> KeyVersion:
        """Destroy system data-key ``version`` once nothing uses it. Idempotent.

        Refused (KeyRetirementRefusedError, saying what to do) while it is the active version,
        within two cache lifetimes of its supersession, while a re-encryption pass is unfinished,
        or while any registered column still holds a value sealed with it.
        """
        keyring = self._keyring
        with keyring.uow.begin() as session:
            row = self._retirable(session, version)
            if row.status == STATUS_RETIRED:
                return _info(row)
        if not self._columns:
            # Nothing registered means nothing was counted, not that nothing uses the key.
            raise KeyRetirementRefusedError(
                "no system-sealed column is registered with this keyring, so nothing can show "
                f"that version {version} is unused"
            )
        for column in self._columns.values():
            remaining = column.count_sealed_with(version)
            if remaining:
                raise KeyRetirementRefusedError(
                    f"{remaining} values in {column.name} still use system data-key version "
                    f"{version}; {_REENCRYPT_HINT}"
                )
        with keyring.uow.begin() as session:
            # Checked again in the retiring transaction: a pass may have started meanwhile.
            row = self._retirable(session, version)
            repo.retire(session, row, now=keyring.clock.now())
            info = _info(row)
            if keyring.recorder is not None:
                keyring.recorder(
                    session,
                    action="key.retired",
                    tenant=None,
                    details={"owner": _OWNER.label, "version": version},
                )
        keyring.forget(_OWNER)
        return info

    def _retirable(self, session: Session, version: int) -> KeyRow:
        row = repo.key_row(session, _OWNER, version)
        if row is None:
            raise KeyRetirementRefusedError(f"the system data key has no version {version}")
        if row.status == STATUS_RETIRED:
            return row
        if row.status == STATUS_ACTIVE:
            raise KeyRetirementRefusedError(
                f"version {version} is the active system data key; rotate it first "
                "(`bastion keys rotate --system`)"
            )
        settle = timedelta(seconds=2 * self._keyring.cache_ttl_seconds)
        superseded = as_utc(row.superseded_at or row.created_at)
        if self._keyring.clock.now() - superseded < settle:
            raise KeyRetirementRefusedError(
                f"system data-key version {version} was superseded at {superseded.isoformat()}; "
                f"other processes may still use it from their cache, retry after "
                f"{(superseded + settle).isoformat()}"
            )
        if repo.running_jobs(session, SYSTEM_JOB_OWNER):
            raise KeyRetirementRefusedError(
                f"re-encryption of the system data key has not finished; {_REENCRYPT_HINT}"
            )
        return row


def _info(row: KeyRow) -> KeyVersion:
    return KeyVersion(
        owner=f"system:{SYSTEM_DATA}",
        version=row.version,
        status=row.status,
        encryptions_reserved=row.encryptions,
        created_at=as_utc(row.created_at),
        superseded_at=as_utc(row.superseded_at) if row.superseded_at else None,
        retired_at=as_utc(row.retired_at) if row.retired_at else None,
    )
