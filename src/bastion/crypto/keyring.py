"""The keyring: tenant and system data keys, wrapped by the master key, and the recipes over them.

Recipes (no knobs; nonces and keys are made here, never taken from callers)::

    seal(tenant, *, purpose, record_id, plaintext) -> bytes      AES-256-GCM, tenant data key
    open(tenant, *, purpose, record_id, sealed) -> bytes
    seal_system(*, purpose, record_id, plaintext) / open_system(...)   Bastion's own secrets
    blind_index(tenant, *, field, value) -> bytes                 HMAC-SHA256, exact-match lookup
    sign(message) / signing_public_key() / signing_public_key_pem()   Ed25519
    system_mac(purpose, message) -> bytes                         HMAC-SHA256, stable pseudonyms

Key management (``provision_tenant``, ``rotate``, ``reencrypt``, ``retire``, ``shred_tenant``,
``rotate_kek``) lives in ``bastion.crypto.admin`` and is reached through this class too.

Caching. Unwrapped keys live only in memory, in bounded maps (``MAX_CACHED_KEYS`` owners, oldest
evicted first, each with at most ``MAX_CACHED_VERSIONS`` versions) that keep the ``AESGCM``
objects themselves (building one per call costs ~35 %, PERF-NOTES). Entries live
``KEY_CACHE_TTL_SECONDS``: that bounds how long another process keeps using a version this process
rotated, or a key this process shredded.

Hot path (``seal``/``open`` of a 1 KiB record; bench/bench_crypto.py). What it costs beyond the two
AESGCM calls, and why each part stays: a nonce from ``crypto.nonces`` (a pool of OS-random
nonces: one getrandom call per 1,024, where one per nonce cost as much as a third of the AES
work here); the header and nonce joined to the ciphertext, and the ciphertext sliced out again
(two copies of the record, forced by a ``bytes`` in, ``bytes`` out API); the associated data
(cached prefix + record id); one clock read each (the cache lifetime above is a security bound,
not a hint); dictionary subscripts rather than ``.get`` calls and no tuple keys.

Encryption counter. Random 96-bit nonces allow at most 2^32 encryptions per key (NIST SP 800-38D
section 8.3). Before encrypting, a process *reserves* ``RESERVATION_BLOCK`` encryptions by adding
them to the version's persisted counter in one atomic UPDATE, then spends them in memory. So the
persisted counter is never below the true count, and exceeds it by less than one block per process
that used the key (a crash loses the rest of its block: harmless, it only over-counts). One write
per 65,536 encryptions, none on the hot path. When a reservation would take a key past
``MAX_ENCRYPTIONS_PER_KEY``, the keyring rotates that key first, so no key ever exceeds 2^32.

SQLite. Reservations are writes in the keyring's own transaction (first use of a key in a
process, after a rotation, once per block). A caller holding a SQLite write transaction should
seal before its first write, or the reservation waits for that lock (busy timeout, then fails).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from time import monotonic
from typing import Final, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bastion.crypto import envelope
from bastion.crypto import repository as repo
from bastion.crypto.admin import KekProgress, KeyAdministration, ReencryptProgress
from bastion.crypto.envelope import (
    FORMAT_V1,
    HEADER_BYTES,
    KIND_SYSTEM,
    KIND_TENANT,
    MAX_NAME_BYTES,
    MIN_SEALED_BYTES,
    NONCE_BYTES,
    PAYLOAD_OFFSET,
    SLOT_INDEX,
    SLOT_KEY,
    SYSTEM_DATA,
    SYSTEM_MAC,
    SYSTEM_OWNER,
    SYSTEM_SIGNING,
    aad_prefix,
)
from bastion.crypto.errors import (
    IntegrityCheckError,
    KeyNotProvisionedError,
    KeyringConflictError,
    KeyUnwrapError,
    MasterKeyMismatchError,
    TenantErasedError,
)
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.models import STATUS_RETIRED, SystemKey
from bastion.crypto.nonces import NONCES as _NONCES
from bastion.crypto.primitives import (
    hkdf_sha256,
    hmac_sha256,
    public_key_pem,
    raw_public_key,
    signing_key_from_seed,
)
from bastion.crypto.reencrypt import ReencryptionTarget
from bastion.crypto.repository import KeyRow, Owner, system_owner, tenant_owner
from bastion.crypto.status import KeyringStatus, TenantKeyStatus, keyring_status, tenant_statuses
from bastion.crypto.system_admin import SystemKeyAdministration
from bastion.crypto.system_sealed import SystemSealedColumn
from bastion.crypto.types import (
    ErasureReceipt,
    KekRotationReport,
    KeyEventRecorder,
    KeyVersion,
    ReencryptionReport,
)
from bastion.db import UnitOfWork
from bastion.errors import InvalidInput, StartupError
from bastion.kernel.clock import Clock

K = TypeVar("K")
V = TypeVar("V")
MAX_ENCRYPTIONS_PER_KEY: Final = 2**32
RESERVATION_BLOCK: Final = 2**16
KEY_CACHE_TTL_SECONDS: Final = 60.0
MAX_CACHED_KEYS: Final = 10_000
MAX_CACHED_PURPOSES: Final = 1024
MAX_CACHED_VERSIONS: Final = 64
_MOVED_OR_TAMPERED: Final = "tampered, or moved from another record or tenant"
# Each lost round means another process reserved or rotated and committed: progress was made,
# so a generous bound only matters in a stampede at the moment a key reaches its limit.
CONFLICT_RETRIES: Final = 20

SYSTEM_MAC_INFO: Final = b"bastion:system-mac:v1:"


_KeyCache = dict[str, dict[bytes, "_CachedKey"]]
_NO_KEYS: Final[dict[bytes, _CachedKey]] = {}


class _CachedKey:
    """An unwrapped key as ``AESGCM`` plus, per purpose, the associated-data prefix (header,
    owner, purpose) it seals and opens with, so the hot path only appends the record id."""

    __slots__ = ("aads", "aead", "fresh_until", "head")

    def __init__(self, *, head: bytes, aead: AESGCM) -> None:
        self.head = head
        self.aead = aead
        self.aads: dict[str, bytes] = {}
        self.fresh_until = monotonic() + KEY_CACHE_TTL_SECONDS


class _ActiveKey(_CachedKey):
    """The version new encryptions use, with its unspent reservation."""

    __slots__ = ("block", "tickets", "version")

    def __init__(self, *, version: int, kind: int, aead: AESGCM, block: int) -> None:
        super().__init__(head=envelope.header(kind, version), aead=aead)
        self.version = version
        self.block = block
        # next() on itertools.count is atomic under the GIL: threads never spend a ticket twice.
        self.tickets: Iterator[int] = itertools.count()


class Keyring:
    """Envelope encryption with per-tenant data keys; thread-safe; see the module docstring.

    Key state is read and written in the keyring's own short transactions (``uow``), never the
    caller's: a key, once used, must not vanish because the caller's transaction rolled back.
    """

    def __init__(
        self,
        *,
        uow: UnitOfWork,
        provider: KeyProvider,
        clock: Clock,
        max_encryptions_per_key: int = MAX_ENCRYPTIONS_PER_KEY,
        reservation_block: int = RESERVATION_BLOCK,
        reencrypt_batch_rows: int = 500,
    ) -> None:
        self._uow = uow
        self._provider = provider
        self._clock = clock
        self._limit = max_encryptions_per_key
        self._block = min(reservation_block, max_encryptions_per_key)
        self._batch = reencrypt_batch_rows
        self._lock = threading.RLock()
        self._active: dict[str, _ActiveKey] = {}
        self._active_system: _ActiveKey | None = None
        # owner as bound in the AAD -> 6-byte header -> key (the header carries kind and version).
        # Nested rather than keyed by a tuple: no tuple to build and hash on every open.
        self._keys: _KeyCache = {}
        # System keys live in their own map: a tenant whose id happened to be "system" must
        # never reach a system key through the tenant fast path.
        self._system_keys: _KeyCache = {}
        self._index_keys: dict[str, tuple[bytes, float]] = {}
        self._mac_keys: dict[str, bytes] = {}
        self._signing: tuple[Callable[[bytes], bytes], bytes] | None = None
        self._admin = KeyAdministration(self)
        self._system_admin = SystemKeyAdministration(self, self._admin)
        self._recorder: KeyEventRecorder | None = None

    def record_events_with(self, recorder: KeyEventRecorder) -> None:
        """Send every key-management action (creation, rotation, retirement, shredding, master-key
        rotation) to ``recorder``, in the transaction that makes it."""
        self._recorder = recorder

    @property
    def recorder(self) -> KeyEventRecorder | None:
        return self._recorder

    # ----------------------------------------------------------------- recipes: sealing
    # The two hot paths below are written out flat on purpose: the target is <= 30 % over raw
    # AESGCM for a 1 KiB record, and every extra call or encode shows in that figure.
    def seal(self, tenant: str, *, purpose: str, record_id: str, plaintext: bytes) -> bytes:
        """Encrypt ``plaintext`` for ``tenant`` under its active data key.

        The result is bound to (tenant, purpose, record_id, key version): opened with any other
        value it fails. Raises KeyNotProvisionedError, TenantErasedError, InvalidInput (purpose
        or record id over 1,024 characters).
        """
        try:
            key = self._active[tenant]
        except KeyError:
            key = self._reserve(tenant_owner(tenant))
        else:
            if next(key.tickets) >= key.block:
                key = self._reserve(tenant_owner(tenant))
            elif monotonic() > key.fresh_until:
                key = self._revalidate(tenant_owner(tenant), key)
        try:
            aad = key.aads[purpose]
        except KeyError:
            aad = self._aad_prefix(key, tenant, purpose, record_id)
        if len(record_id) > MAX_NAME_BYTES:
            self._aad_prefix(key, tenant, purpose, record_id)  # raises InvalidInput
        pool, offsets = _NONCES.state  # crypto.nonces: random, each handed out once
        at = next(offsets)
        nonce = pool[at : at + NONCE_BYTES] or _NONCES.refill()
        try:
            return key.head + nonce + key.aead.encrypt(nonce, plaintext, aad + record_id.encode())
        except UnicodeEncodeError:
            raise InvalidInput("a record id must be valid Unicode text") from None

    def open(self, tenant: str, *, purpose: str, record_id: str, sealed: bytes) -> bytes:
        """Decrypt a value sealed by ``seal`` with the same tenant, purpose and record id.

        Raises IntegrityCheckError naming the object for every failure (tampered, moved, malformed,
        unknown or retired key version), TenantErasedError if the tenant was shredded.
        """
        # Only headers that passed full validation once are ever cached, so a hit means the
        # format, kind and version are known; anything else takes the slow, checking path.
        # Subscripts, not .get(): a miss (rare: once per key and purpose) costs an exception,
        # a hit costs no method call.
        try:
            entry = self._keys[tenant][sealed[:HEADER_BYTES]]
            aad = entry.aads[purpose]
        except (KeyError, TypeError):  # a miss, or not bytes: the checking path says which
            return self._open(KIND_TENANT, tenant, purpose, record_id, sealed)
        if len(sealed) < MIN_SEALED_BYTES or monotonic() > entry.fresh_until:
            return self._open(KIND_TENANT, tenant, purpose, record_id, sealed)
        try:
            return entry.aead.decrypt(
                sealed[HEADER_BYTES:PAYLOAD_OFFSET],
                sealed[PAYLOAD_OFFSET:],
                aad + record_id.encode(),
            )
        except (InvalidTag, UnicodeEncodeError):  # a record id with no UTF-8 form was never sealed
            raise self._integrity(
                KIND_TENANT, tenant, purpose, record_id, _MOVED_OR_TAMPERED
            ) from None

    def seal_system(self, *, purpose: str, record_id: str, plaintext: bytes) -> bytes:
        """As ``seal``, under Bastion's own system data key (TOTP secrets, client secrets...)."""
        key = self._active_system
        if key is None or next(key.tickets) >= key.block:
            key = self._reserve(system_owner(SYSTEM_DATA))
        elif monotonic() > key.fresh_until:
            key = self._revalidate(system_owner(SYSTEM_DATA), key)
        try:
            aad = key.aads[purpose]
        except KeyError:
            aad = self._aad_prefix(key, SYSTEM_OWNER, purpose, record_id)
        if len(record_id) > MAX_NAME_BYTES:
            self._aad_prefix(key, SYSTEM_OWNER, purpose, record_id)  # raises InvalidInput
        pool, offsets = _NONCES.state  # crypto.nonces: random, each handed out once
        at = next(offsets)
        nonce = pool[at : at + NONCE_BYTES] or _NONCES.refill()
        try:
            return key.head + nonce + key.aead.encrypt(nonce, plaintext, aad + record_id.encode())
        except UnicodeEncodeError:
            raise InvalidInput("a record id must be valid Unicode text") from None

    def open_system(self, *, purpose: str, record_id: str, sealed: bytes) -> bytes:
        """Inverse of ``seal_system``; IntegrityCheckError on any failure."""
        return self._open(KIND_SYSTEM, SYSTEM_OWNER, purpose, record_id, sealed)

    def _open(self, kind: int, owner: str, purpose: str, record_id: str, sealed: object) -> bytes:
        """The checking path: any input type, cache misses, expired entries."""
        if sealed.__class__ is not bytes:
            sealed = self._coerce(kind, owner, purpose, record_id, sealed)
        if not isinstance(sealed, bytes):  # pragma: no cover - _coerce returns bytes or raises
            raise self._integrity(kind, owner, purpose, record_id, "not a byte string")
        entry = self._cache_for(kind).get(owner, _NO_KEYS).get(sealed[:HEADER_BYTES])
        if entry is None or len(sealed) < MIN_SEALED_BYTES or monotonic() > entry.fresh_until:
            entry = self._load_version(kind, owner, purpose, record_id, sealed)
        aad = entry.aads.get(purpose)
        if aad is None:
            aad = self._aad_prefix(entry, owner, purpose, "", kind=kind, error_id=record_id)
        try:
            return entry.aead.decrypt(
                sealed[HEADER_BYTES:PAYLOAD_OFFSET],
                sealed[PAYLOAD_OFFSET:],
                aad + record_id.encode(),
            )
        except (InvalidTag, UnicodeEncodeError):  # a record id with no UTF-8 form was never sealed
            raise self._integrity(kind, owner, purpose, record_id, _MOVED_OR_TAMPERED) from None

    def _coerce(self, kind: int, owner: str, purpose: str, record_id: str, sealed: object) -> bytes:
        if isinstance(sealed, bytes | bytearray | memoryview):
            return bytes(sealed)
        raise self._integrity(kind, owner, purpose, record_id, "not a byte string")

    def _aad_prefix(
        self,
        key: _CachedKey,
        owner: str,
        purpose: str,
        record_id: str,
        *,
        kind: int | None = None,
        error_id: str = "",
    ) -> bytes:
        """Header + owner/purpose part of the associated data, cached on ``key``. Sealing
        (``kind`` None) refuses over-long names with InvalidInput; opening reports them as
        IntegrityCheckError (nothing with such a name can have been sealed)."""
        try:
            if len(record_id) > MAX_NAME_BYTES:
                raise ValueError(f"a record id is limited to {MAX_NAME_BYTES} characters")
            aad = key.head + aad_prefix(owner, purpose)
        except ValueError as exc:
            if kind is None:
                raise InvalidInput(str(exc)) from None
            raise self._integrity(kind, owner, purpose, error_id, str(exc)) from None
        with self._lock:
            if len(key.aads) >= MAX_CACHED_PURPOSES:
                key.aads.clear()
            key.aads[purpose] = aad
        return aad

    def integrity_error(
        self, tenant: str, purpose: str, record_id: str, reason: str
    ) -> IntegrityCheckError:
        """The IntegrityCheckError for a tenant's sealed value (for code parsing sealed data)."""
        return self._integrity(KIND_TENANT, tenant, purpose, record_id, reason)

    def system_integrity_error(
        self, purpose: str, record_id: str, reason: str
    ) -> IntegrityCheckError:
        """The IntegrityCheckError for a system-sealed value (for code parsing sealed data)."""
        return self._integrity(KIND_SYSTEM, SYSTEM_OWNER, purpose, record_id, reason)

    @staticmethod
    def _integrity(
        kind: int, owner: str, purpose: str, record_id: str, reason: str
    ) -> IntegrityCheckError:
        whose = f"tenant {owner}" if kind == KIND_TENANT else "the system"
        return IntegrityCheckError(
            f"sealed {purpose!r} {record_id!r} of {whose} failed its integrity check: {reason}",
            purpose=purpose,
            record_id=record_id,
        )

    # ----------------------------------------------------------------- recipes: derived keys
    def blind_index(self, tenant: str, *, field: str, value: str | bytes) -> bytes:
        """32-byte HMAC-SHA256 of ``value`` under the tenant's blind-index key, domain-separated by
        ``field``. Deterministic (that is the point: equal values give equal indexes), stable across
        data-key rotation. Normalise ``value`` first (e.g. lower-case an e-mail address).
        Raises KeyNotProvisionedError, TenantErasedError."""
        cached = self._index_keys.get(tenant)
        if cached is None or monotonic() > cached[1]:
            cached = (self._load_index_key(tenant), monotonic() + KEY_CACHE_TTL_SECONDS)
            with self._lock:
                self._bound(self._index_keys)
                self._index_keys[tenant] = cached
        data = value.encode() if isinstance(value, str) else value
        return hmac_sha256(cached[0], field.encode(), data)

    def system_mac(self, purpose: str, message: bytes) -> bytes:
        """32-byte HMAC-SHA256 of ``message`` under a key derived (HKDF) from Bastion's MAC root
        for ``purpose``. Stable for the life of the installation (never rotated with the system
        data key), so it can name things pseudonymously, e.g. audit actors."""
        key = self._mac_keys.get(purpose)
        if key is None:
            root = self.unwrap_row(self._system_row(SYSTEM_MAC), system_owner(SYSTEM_MAC))
            key = hkdf_sha256(root, info=SYSTEM_MAC_INFO + purpose.encode())
            with self._lock:
                self._bound(self._mac_keys)
                self._mac_keys[purpose] = key
        return hmac_sha256(key, message)

    def sign(self, message: bytes) -> bytes:
        """64-byte Ed25519 (RFC 8032) signature of ``message`` with Bastion's signing key."""
        return self._signer()[0](message)

    def signing_public_key(self) -> bytes:
        """The raw 32-byte Ed25519 public key that verifies ``sign``."""
        return self._signer()[1]

    def signing_public_key_pem(self) -> bytes:
        """The signing public key as SubjectPublicKeyInfo PEM, for export to verifiers."""
        return public_key_pem(self.signing_public_key())

    def _signer(self) -> tuple[Callable[[bytes], bytes], bytes]:
        if self._signing is None:
            owner = system_owner(SYSTEM_SIGNING)
            row = self._system_row(SYSTEM_SIGNING)
            private = signing_key_from_seed(self.unwrap_row(row, owner))
            public = raw_public_key(private)
            stored = row.public_key if isinstance(row, SystemKey) else None
            if stored is not None and stored != public:
                raise MasterKeyMismatchError("the stored signing public key does not match its key")
            self._signing = (private.sign, public)
        return self._signing

    # ----------------------------------------------------------------- loading keys
    def _reserve(self, owner: Owner) -> _ActiveKey:
        """Reserve a block of encryptions on the active version (rotating it first if the block
        would cross the limit) and cache it. Raises KeyNotProvisionedError, TenantErasedError."""
        with self._lock:
            for _ in range(CONFLICT_RETRIES):
                try:
                    with self._uow.begin() as session:
                        row = self._reserve_row(session, owner)
                        version = row.version
                        aead = self._cached_or_unwrap(owner, row)
                except IntegrityError:
                    continue  # another process rotated the same key at the same moment
                key = _ActiveKey(version=version, kind=owner.kind, aead=aead, block=self._block)
                next(key.tickets)  # the caller spends this one
                if owner.kind == KIND_TENANT:
                    self._bound(self._active)
                    self._active[owner.name] = key
                else:
                    self._active_system = key
                return key
        raise KeyringConflictError(f"the data key of {owner.label} kept changing; retry")

    def _revalidate(self, owner: Owner, key: _ActiveKey) -> _ActiveKey:
        """A cached active key outlived its lifetime: keep it if it is still the active version.

        A read, not a write: on SQLite a caller may be inside its own write transaction, and the
        keyring's writes (reservations) are kept to first use, rotation and once a block."""
        with self._uow.begin() as session:
            row = repo.active_row(session, owner)
            still_active = row is not None and row.version == key.version
        if not still_active:
            return self._reserve(owner)
        key.fresh_until = monotonic() + KEY_CACHE_TTL_SECONDS
        return key

    def _reserve_row(self, session: Session, owner: Owner) -> KeyRow:
        for _ in range(CONFLICT_RETRIES):
            reserved = repo.reserve_encryptions(session, owner, self._block)
            if reserved is None:
                if owner.kind == KIND_TENANT and repo.is_erased(session, owner.name):
                    raise TenantErasedError(f"tenant {owner.name} was erased; its data is gone")
                if repo.active_row(session, owner) is None:
                    raise KeyNotProvisionedError(f"no data key was provisioned for {owner.label}")
                continue  # rotated between the two statements: reserve on the new version
            version, total = reserved
            row = repo.key_row(session, owner, version)
            if row is None:  # pragma: no cover - the UPDATE just returned it
                continue
            if total <= self._limit:
                return row
            # The block would cross the nonce limit: rotate first; the old version keeps
            # decrypting but never encrypts again.
            new = self._admin.add_version(session, owner, row)
            new.encryptions = self._block
            session.flush()
            return new
        raise KeyringConflictError(f"the data key of {owner.label} kept changing; retry")

    def _cached_or_unwrap(self, owner: Owner, row: KeyRow) -> AESGCM:
        name, head = _aad_owner(owner), envelope.header(owner.kind, row.version)
        cache = self._cache_for(owner.kind)
        cached = cache.get(name, _NO_KEYS).get(head)
        if cached is not None and monotonic() <= cached.fresh_until:
            return cached.aead
        aead = AESGCM(self.unwrap_row(row, owner))
        self._cache_put(cache, name, head, _CachedKey(head=head, aead=aead))
        return aead

    def _load_version(
        self, kind: int, owner_name: str, purpose: str, record_id: str, sealed: bytes
    ) -> _CachedKey:
        """Validate the header fully, then load (and cache) its key version from the keyring."""
        if len(sealed) < MIN_SEALED_BYTES or sealed[0] != FORMAT_V1 or sealed[1] != kind:
            raise self._integrity(
                kind, owner_name, purpose, record_id, _malformed_reason(sealed, kind)
            )
        version = int.from_bytes(sealed[2:HEADER_BYTES], "big")
        owner = tenant_owner(owner_name) if kind == KIND_TENANT else system_owner(SYSTEM_DATA)
        with self._uow.begin() as session:
            row = repo.key_row(session, owner, version)
            if row is None and kind == KIND_TENANT and repo.is_erased(session, owner_name):
                raise TenantErasedError(f"tenant {owner_name} was erased; its data is gone")
            if row is None:
                raise self._integrity(
                    kind, owner_name, purpose, record_id, f"unknown key version {version}"
                )
            if row.status == STATUS_RETIRED or row.wrapped_key is None:
                raise self._integrity(
                    kind, owner_name, purpose, record_id, f"key version {version} was retired"
                )
            try:
                aead = AESGCM(self.unwrap_row(row, owner))
            except IntegrityCheckError as exc:
                raise self._integrity(kind, owner_name, purpose, record_id, exc.detail) from None
        head = envelope.header(kind, version)
        entry = _CachedKey(head=head, aead=aead)
        with self._lock:
            self._cache_put(self._cache_for(kind), owner_name, head, entry)
        return entry

    def _load_index_key(self, tenant: str) -> bytes:
        owner = tenant_owner(tenant)
        with self._uow.begin() as session:
            row = repo.active_row(session, owner)
            if row is None:
                if repo.is_erased(session, tenant):
                    raise TenantErasedError(f"tenant {tenant} was erased; its data is gone")
                raise KeyNotProvisionedError(f"no data key was provisioned for tenant {tenant}")
            return self.unwrap_row(row, owner, slot=SLOT_INDEX)

    def _system_row(self, name: str) -> KeyRow:
        with self._uow.begin() as session:
            row = repo.active_row(session, system_owner(name))
        if row is None:
            raise StartupError(f"the keyring has no system {name} key; run `bastion init`")
        return row

    def unwrap_row(self, row: KeyRow, owner: Owner, *, slot: str = SLOT_KEY) -> bytes:
        """Unwrap a row's key (or its blind-index key); IntegrityCheckError naming the key."""
        wrapped = row.wrapped_key if slot == SLOT_KEY else getattr(row, "wrapped_index_key", None)
        if wrapped is None:
            raise IntegrityCheckError(f"{owner.label} key version {row.version} was destroyed")
        context = envelope.wrap_context(owner.scope, owner.name, row.version, slot)
        try:
            return self._provider.unwrap(wrapped, context=context)
        except KeyUnwrapError as exc:
            raise IntegrityCheckError(
                f"{owner.label} key version {row.version} does not unwrap: {exc}"
            ) from None

    def wrap_for(self, owner: Owner, version: int, key: bytes, *, slot: str = SLOT_KEY) -> bytes:
        """Wrap ``key`` under the current master key for ``owner``'s ``version`` and ``slot``."""
        context = envelope.wrap_context(owner.scope, owner.name, version, slot)
        return self._provider.wrap(key, context=context)

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    @property
    def uow(self) -> UnitOfWork:
        return self._uow

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def batch_rows(self) -> int:
        return self._batch

    @property
    def cache_ttl_seconds(self) -> float:
        return KEY_CACHE_TTL_SECONDS

    def replace_provider(self, provider: KeyProvider) -> None:
        """After a KEK rotation: use ``provider`` from now on (cached data keys stay valid)."""
        with self._lock:
            self._provider = provider

    def forget(self, owner: Owner | None = None) -> None:
        """Drop cached keys of ``owner`` (all if None) so the next use re-reads the keyring."""
        with self._lock:
            if owner is None:
                self._active.clear()
                self._active_system = None
                self._keys.clear()
                self._system_keys.clear()
                self._index_keys.clear()
                self._mac_keys.clear()
                self._signing = None
                return
            name = _aad_owner(owner)
            if owner.kind == KIND_TENANT:
                self._active.pop(owner.name, None)
            else:
                self._active_system = None
            self._cache_for(owner.kind).pop(name, None)
            if owner.kind == KIND_TENANT:
                self._index_keys.pop(owner.name, None)

    def _cache_for(self, kind: int) -> _KeyCache:
        return self._keys if kind == KIND_TENANT else self._system_keys

    def _cache_put(self, cache: _KeyCache, owner: str, head: bytes, entry: _CachedKey) -> None:
        versions = cache.get(owner)
        if versions is None:
            self._bound(cache)
            versions = cache[owner] = {}
        elif len(versions) >= MAX_CACHED_VERSIONS:
            versions.clear()  # an owner with that many versions in use is rare; reload them
        versions[head] = entry

    @staticmethod
    def _bound(cache: dict[K, V]) -> None:
        _evict_oldest(cache)

    # ----------------------------------------------------------------- management
    def provision_tenant(self, tenant: str) -> KeyVersion:
        """Create the tenant's first data key if it has none; see KeyAdministration."""
        return self._admin.provision_tenant(tenant)

    def key_versions(self, tenant: str) -> list[KeyVersion]:
        """Every version of the tenant's data key, oldest first, without key material."""
        return self._admin.key_versions(tenant)

    def status(self) -> KeyringStatus:
        """Versions, counters and unfinished work at a glance; no key material (crypto.status)."""
        with self._uow.begin() as session:
            return keyring_status(session, master_key_id=self.provider.key_id)

    def tenant_key_statuses(self, *, after: str | None, limit: int) -> list[TenantKeyStatus]:
        """Per-tenant versions and re-encryption progress, by tenant id after ``after``."""
        with self._uow.begin() as session:
            return tenant_statuses(session, after=after, limit=limit)

    def rotate(self, tenant: str) -> KeyVersion:
        """New data-key version for new writes; older ones keep decrypting until retired."""
        return self._admin.rotate(tenant)

    def rotate_system_key(self) -> KeyVersion:
        """New version of the system data key."""
        return self._admin.rotate_system_key()

    def register_system_column(self, column: SystemSealedColumn) -> None:
        """Add a column of ``seal_system`` values to system re-encryption and retirement checks."""
        self._system_admin.register(column)

    @property
    def system_columns(self) -> Sequence[SystemSealedColumn]:
        """The registered columns of values sealed with the system data key."""
        return self._system_admin.columns

    def system_key_versions(self) -> list[KeyVersion]:
        """Every version of the system data key, oldest first, without key material."""
        return self._system_admin.versions()

    def reencrypt_system(
        self, *, progress: ReencryptProgress | None = None
    ) -> list[ReencryptionReport]:
        """Resumable re-encryption of older system-sealed values in every registered column."""
        return self._system_admin.reencrypt(progress=progress)

    def retire_system_key(self, version: int) -> KeyVersion:
        """Destroy a superseded system data-key version nothing uses (KeyRetirementRefusedError)."""
        return self._system_admin.retire(version)

    def register_target(self, target: ReencryptionTarget) -> None:
        """Add a store of sealed values to re-encryption and retirement checks."""
        self._admin.register_target(target)

    @property
    def targets(self) -> Sequence[ReencryptionTarget]:
        """The registered stores of sealed tenant data."""
        return self._admin.targets

    def reencrypt(
        self, tenant: str, *, progress: ReencryptProgress | None = None
    ) -> list[ReencryptionReport]:
        """Resumable re-encryption of the tenant's older values in every registered target."""
        return self._admin.reencrypt(tenant, progress=progress)

    def retire(self, tenant: str, version: int) -> KeyVersion:
        """Destroy a superseded version that nothing uses any more (KeyRetirementRefusedError)."""
        return self._admin.retire(tenant, version)

    def shred_tenant(self, tenant: str) -> ErasureReceipt:
        """Crypto-shred the tenant and write the erasure ledger; idempotent."""
        return self._admin.shred_tenant(tenant)

    def erasures(self) -> list[ErasureReceipt]:
        """The erasure ledger, oldest first."""
        return self._admin.erasures()

    def replay_erasures(self, receipts: Sequence[ErasureReceipt]) -> int:
        """Re-apply erasure-ledger entries (after a restore); how many tenants were erased."""
        return self._admin.replay_erasures(receipts)

    def rotate_kek(
        self, new_provider: KeyProvider, *, progress: KekProgress | None = None
    ) -> KekRotationReport:
        """Rewrap every stored key under ``new_provider``; resumable and idempotent."""
        return self._admin.rotate_kek(new_provider, progress=progress)

    def initialise(self) -> list[str]:
        """Create whichever system key (data, MAC root, signing) is missing, after checking the
        master key against any that exist (MasterKeyMismatchError). Idempotent; names created."""
        return self._admin.initialise()

    def verify_master_key(self) -> None:
        """Prove the configured master key wraps this keyring (MasterKeyMismatchError, one line,
        nothing changed; StartupError if the keyring was never initialised)."""
        self._admin.verify_master_key()


def _evict_oldest(cache: dict[K, V]) -> None:
    # Oldest-first eviction (dicts keep insertion order); every entry also expires after
    # KEY_CACHE_TTL_SECONDS, so a hot key comes back after at most one reload.
    while len(cache) >= MAX_CACHED_KEYS:
        cache.pop(next(iter(cache)))


def _aad_owner(owner: Owner) -> str:
    return owner.name if owner.kind == KIND_TENANT else SYSTEM_OWNER


def _malformed_reason(sealed: bytes, kind: int) -> str:
    if len(sealed) < MIN_SEALED_BYTES:
        return f"malformed (only {len(sealed)} bytes)"
    if sealed[0] != FORMAT_V1:
        return f"unknown format version {sealed[0]}"
    expected = "tenant" if kind == KIND_TENANT else "system"
    return f"not sealed with a {expected} data key (key kind {sealed[1]})"
