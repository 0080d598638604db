"""The ``pkcs11`` master-key provider: an AES-256 key that never leaves a PKCS#11 token.

Wrapping and unwrapping happen inside the token with ``CKM_AES_GCM``; Bastion only ever sees
the data keys, never the master key. Tests run it against SoftHSM2; any token that offers AES-GCM
with a caller-supplied 96-bit IV works the same way.

Why AES-GCM and not ``CKM_AES_KEY_WRAP_PAD`` (RFC 5649): key wrap has no associated data, so the
context (tenant, key version) would have to be bound some other way, for instance by a second
key or a MAC computed outside the token, and ``C_WrapKey`` needs the data key imported into the
token as an object first. GCM authenticates the context natively in one ``C_Encrypt``. Its limit,
2^32 random-IV encryptions per key, is far beyond the number of wraps a KEK sees (one per data
key version, plus one per KEK rotation).

Wrapped blob (``FORMAT_VERSION`` = 1)::

    version (1 byte) | IV (12 bytes, fresh per wrap) | ciphertext | GCM tag (16 bytes)

The associated data is ``AAD_PREFIX + version + context``, so a blob moved to another context,
re-labelled with another version, or truncated fails to authenticate.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pkcs11
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pydantic import SecretStr

from bastion.crypto.errors import HsmError, HsmPinError, KeyUnwrapError
from bastion.crypto.kms.pkcs11_library import (
    LoadedModule,
    describe_error,
    load_module,
    reload_module,
    token_session,
)

__all__ = ["FORMAT_VERSION", "Pkcs11KeyProvider", "create_master_key", "reload_module"]

FORMAT_VERSION = 1
KEY_BITS = 256
IV_BYTES = 12
TAG_BITS = 128
AAD_PREFIX = b"bastion:kek-wrap:pkcs11\x00"
_HEADER_BYTES = 1 + IV_BYTES
_MIN_BLOB_BYTES = _HEADER_BYTES + TAG_BITS // 8
T = TypeVar("T")

# The session, the token or the library went away: reopening may cure it, so retry once.
_STALE_SESSION_ERRORS: tuple[type[pkcs11.PKCS11Error], ...] = (
    pkcs11.SessionHandleInvalid,
    pkcs11.SessionClosed,
    pkcs11.UserNotLoggedIn,
    pkcs11.TokenNotPresent,
    pkcs11.DeviceRemoved,
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
)


@dataclass(frozen=True)
class _MasterKey:
    """The token's key object, seen through the two capabilities Bastion uses."""

    obj: pkcs11.SecretKey
    encryptor: pkcs11.EncryptMixin
    decryptor: pkcs11.DecryptMixin


def _find_key(session: pkcs11.Session, *, token_label: str, key_label: str) -> _MasterKey:
    where = f"PKCS#11 token {token_label!r}"
    try:
        found = session.get_key(
            object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=key_label
        )
    except pkcs11.NoSuchKey:
        raise HsmError(
            f"{where} has no AES key labelled {key_label!r}; create it (bastion keys hsm-init) "
            f"or set BASTION_CRYPTO__PKCS11__KEY_LABEL"
        ) from None
    except pkcs11.MultipleObjectsReturned:
        raise HsmError(f"{where} holds several AES keys labelled {key_label!r}") from None
    # python-pkcs11 adds the encrypt/decrypt methods only when CKA_ENCRYPT/CKA_DECRYPT are set.
    if not (
        isinstance(found, pkcs11.SecretKey)
        and isinstance(found, pkcs11.EncryptMixin)
        and isinstance(found, pkcs11.DecryptMixin)
    ):
        raise HsmError(f"{where}: key {key_label!r} is not allowed to encrypt and decrypt")
    return _MasterKey(obj=found, encryptor=found, decryptor=found)


def _attribute(key: pkcs11.SecretKey, attribute: Attribute) -> object:
    """An attribute's value, or None where the token does not offer or reveal it."""
    try:
        return key[attribute]
    except (pkcs11.AttributeTypeInvalid, pkcs11.AttributeSensitive):
        return None


def _aad(context: bytes) -> bytes:
    return AAD_PREFIX + bytes([FORMAT_VERSION]) + context


def _as_bytes(result: bytes | Iterator[bytes]) -> bytes:
    # Single-part calls return bytes; only an iterator input yields an iterator.
    return result if isinstance(result, bytes) else b"".join(result)


_INTEGRITY_MESSAGE = (
    "wrapped key failed authentication: tampered, wrong context, or wrapped by another master key"
)


class Pkcs11KeyProvider:
    """``KeyProvider`` over an AES-256 key in a PKCS#11 token; the key never leaves the token.

    Thread-safe: every call into the library holds the library's lock (see ``LoadedModule``).
    Nothing is opened at construction; ``check()`` opens the token and proves the key works.

    Raises ``HsmError`` (a one-line ``StartupError``; ``HsmPinError`` for a wrong PIN) when the
    library, token, PIN or key cannot be used, and ``KeyUnwrapError`` when a wrapped key does not
    authenticate.
    """

    def __init__(
        self, *, module_path: Path | str, token_label: str, key_label: str, user_pin: SecretStr
    ) -> None:
        self._module_path = Path(module_path)
        self._token_label = token_label
        self._key_label = key_label
        self._user_pin = user_pin
        self._key: _MasterKey | None = None
        self._generation = -1
        self._key_id: str | None = None
        # A refused PIN is not tried again by this provider: tokens lock the PIN after a few
        # failures, and a retry loop would lock the operator out of the master key.
        self._pin_refusal: str | None = None

    def __repr__(self) -> str:
        return f"Pkcs11KeyProvider({self.description})"

    @property
    def description(self) -> str:
        return f"PKCS#11 token {self._token_label!r}, key {self._key_label!r} ({self._module_path})"

    @property
    def key_id(self) -> str:
        """``pkcs11:id=<CKA_ID hex>;kcv=<check value hex>``: it follows the key, not the token.

        Clones of one key in several HSMs have different token serials, and labels can be edited,
        so the id is built from the key's own ``CKA_ID`` and check value (``CKA_CHECK_VALUE``, a
        public fingerprint of the key material); from the label only if the token has neither.
        """
        if self._key_id is None:
            self._key_id = self._with_key(_key_id_of, failure="read the key's identity")
        return self._key_id

    def check(self) -> None:
        """Open the token, find the key, refuse a weak or exportable key, prove a round trip."""
        self._with_key(_check_attributes, failure="read the key's attributes")
        probe = secrets.token_bytes(32)
        context = b"bastion:kek-self-test"
        if not hmac.compare_digest(
            self.unwrap(self.wrap(probe, context=context), context=context), probe
        ):
            raise HsmError(f"{self.description}: the key failed its wrap/unwrap self-test")

    def wrap(self, key: bytes, *, context: bytes) -> bytes:
        """AES-256-GCM in the token; ``context`` is authenticated, the IV is fresh per call."""

        def encrypt(master: _MasterKey) -> bytes:
            # A fresh IV per attempt, so a retried call never reuses one. `secrets` is the OS
            # CSPRNG and saves a round trip to the token's generator.
            iv = secrets.token_bytes(IV_BYTES)
            sealed = master.encryptor.encrypt(
                key,
                mechanism=Mechanism.AES_GCM,
                mechanism_param=GCMParams(iv, _aad(context), TAG_BITS),
            )
            return bytes([FORMAT_VERSION]) + iv + _as_bytes(sealed)

        return self._with_key(encrypt, failure="wrap a data key")

    def unwrap(self, wrapped: bytes, *, context: bytes) -> bytes:
        """Inverse of ``wrap``; ``KeyUnwrapError`` if the blob, the context or the key differ."""
        if len(wrapped) < _MIN_BLOB_BYTES or wrapped[0] != FORMAT_VERSION:
            raise KeyUnwrapError("wrapped key is malformed or of an unknown format version")
        iv = wrapped[1:_HEADER_BYTES]
        body = wrapped[_HEADER_BYTES:]

        def decrypt(master: _MasterKey) -> bytes:
            try:
                opened = master.decryptor.decrypt(
                    body,
                    mechanism=Mechanism.AES_GCM,
                    mechanism_param=GCMParams(iv, _aad(context), TAG_BITS),
                )
            except _STALE_SESSION_ERRORS:
                raise
            except pkcs11.PKCS11Error:
                # Tokens report a bad tag differently (SoftHSM: CKR_GENERAL_ERROR); to the caller
                # every failure is the same opaque integrity error.
                raise KeyUnwrapError(_INTEGRITY_MESSAGE) from None
            return _as_bytes(opened)

        return self._with_key(decrypt, failure="unwrap a data key")

    def _with_key(self, action: Callable[[_MasterKey], T], *, failure: str) -> T:
        """Run ``action`` on the master key under the library lock; reopen once if stale."""
        if self._pin_refusal is not None:
            raise HsmPinError(self._pin_refusal)
        module = load_module(self._module_path)
        with module.lock:
            try:
                return action(self._master_key(module))
            except _STALE_SESSION_ERRORS:
                self._forget(module)
            except pkcs11.PKCS11Error as exc:
                raise self._failure(failure, exc) from None
            try:
                return action(self._master_key(module))
            except pkcs11.PKCS11Error as exc:
                self._forget(module)
                raise self._failure(failure, exc) from None

    def _failure(self, failure: str, exc: pkcs11.PKCS11Error) -> HsmError:
        if isinstance(exc, pkcs11.MechanismInvalid | pkcs11.MechanismParamInvalid):
            return HsmError(f"{self.description}: the token does not support AES-GCM (CKM_AES_GCM)")
        return HsmError(f"{self.description}: cannot {failure}: {describe_error(exc)}")

    def _master_key(self, module: LoadedModule) -> _MasterKey:
        if self._key is not None and self._generation == module.generation:
            return self._key
        try:
            session = token_session(module, token_label=self._token_label, user_pin=self._user_pin)
        except HsmPinError as exc:
            self._pin_refusal = str(exc)
            raise
        self._key = _find_key(session, token_label=self._token_label, key_label=self._key_label)
        self._generation = module.generation
        return self._key

    def _forget(self, module: LoadedModule) -> None:
        # The old handle is dead: drop it without closing, as close() would log the token out.
        # A new generation makes every provider on this module look its key up again, so none
        # keeps using (and later drops) a handle from the dead session.
        module.sessions.pop(self._token_label, None)
        module.generation += 1
        self._key = None
        self._key_id = None


def _check_attributes(master: _MasterKey) -> None:
    key = master.obj
    label = key.label
    length = _attribute(key, Attribute.VALUE_LEN)
    if length != KEY_BITS // 8:
        raise HsmError(f"PKCS#11 key {label!r} must be AES-{KEY_BITS}, found {length!r} bytes")
    # The promise is that the master key never leaves the token: refuse one that could.
    if _attribute(key, Attribute.SENSITIVE) is not True:
        raise HsmError(
            f"PKCS#11 key {label!r} is not sensitive (CKA_SENSITIVE): it can be read out"
        )
    if _attribute(key, Attribute.EXTRACTABLE) is not False:
        raise HsmError(
            f"PKCS#11 key {label!r} is extractable (CKA_EXTRACTABLE): it can be exported"
        )


def _key_id_of(master: _MasterKey) -> str:
    key = master.obj
    parts = []
    ident = _attribute(key, Attribute.ID)
    if isinstance(ident, bytes) and ident:
        parts.append(f"id={ident.hex()}")
    check_value = _attribute(key, Attribute.CHECK_VALUE)
    if isinstance(check_value, bytes) and check_value:
        parts.append(f"kcv={check_value.hex()}")
    if not parts:
        parts.append(f"label={key.label}")
    return "pkcs11:" + ";".join(parts)


def create_master_key(
    *, module_path: Path | str, token_label: str, key_label: str, user_pin: SecretStr
) -> bool:
    """Generate the AES-256 master key inside the token; never overwrites. True if created.

    The key is a token object that is sensitive, non-extractable, private and allowed only to
    encrypt and decrypt, so no PKCS#11 call can reveal it. Its ``CKA_ID`` is 16 random bytes,
    which ``key_id`` reports. Raises ``HsmError`` when the token cannot be used.
    """
    module = load_module(Path(module_path))
    with module.lock:
        session = token_session(module, token_label=token_label, user_pin=user_pin)
        try:
            session.get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=key_label
            )
        except pkcs11.NoSuchKey:
            pass
        except pkcs11.PKCS11Error as exc:
            raise HsmError(
                f"PKCS#11 token {token_label!r} cannot be searched: {describe_error(exc)}"
            ) from None
        else:
            return False
        try:
            session.generate_key(
                KeyType.AES,
                KEY_BITS,
                id=secrets.token_bytes(16),
                label=key_label,
                store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.PRIVATE: True,
                },
            )
        except pkcs11.PKCS11Error as exc:
            reason = describe_error(exc)
            raise HsmError(
                f"PKCS#11 token {token_label!r} cannot generate key {key_label!r}: {reason}"
            ) from None
    return True
