"""Process-wide PKCS#11 state: one loaded library per file and one logged-in session per token.

A PKCS#11 library is global C state, so this is the one place in Bastion that keeps module-level
state on purpose; the provider (``bastion.crypto.kms.pkcs11``) goes through it for every call.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
from pydantic import SecretStr

from bastion.crypto.errors import HsmError, HsmPinError

if TYPE_CHECKING:
    # ``pkcs11.lib`` is a loader function; the class it returns is typed in the private stub.
    from pkcs11._pkcs11 import lib as loaded_library

__all__ = ["LoadedModule", "describe_error", "load_module", "reload_module", "token_session"]


@dataclass
class LoadedModule:
    """One loaded PKCS#11 library and the one logged-in session per token that uses it.

    Why process-wide and shared: a PKCS#11 library is global C state (a second ``C_Finalize``
    kills every session in the process), login is per application, not per session, and
    python-pkcs11's ``Session.close()`` calls ``C_Logout``, which would log out every other
    session on the token. So each token gets one session, kept open until the module is reloaded.

    python-pkcs11 calls ``C_Initialize(NULL)``, which promises the library that no two threads
    call it at once (SoftHSM then disables its own locking); ``lock`` keeps that promise for the
    server's threadpool. Every call into the library happens with it held.
    """

    path: str
    lib: loaded_library
    lock: threading.RLock = field(default_factory=threading.RLock)
    generation: int = 0
    sessions: dict[str, TokenSession] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenSession:
    session: pkcs11.Session
    # Which PIN logged this session in: a second provider with another PIN must not ride on it.
    pin_digest: bytes


_modules: dict[str, LoadedModule] = {}
_modules_lock = threading.Lock()


def load_module(module_path: Path) -> LoadedModule:
    # One entry per file, however it is named: a second initialisation of the same library
    # through another path would share its C state behind the lock's back.
    path = str(module_path.resolve())
    with _modules_lock:
        module = _modules.get(path)
        if module is not None:
            return module
        if not module_path.is_file():
            raise HsmError(
                f"PKCS#11 module {path} does not exist; install the token's library "
                f"(Debian package softhsm2 for SoftHSM) or set BASTION_CRYPTO__PKCS11__MODULE_PATH"
            )
        try:
            lib = pkcs11.lib(path)
        except pkcs11.PKCS11Error as exc:
            raise HsmError(
                f"PKCS#11 module {path} cannot be loaded: {describe_error(exc)}"
            ) from None
        module = LoadedModule(path=path, lib=lib)
        _modules[path] = module
        return module


def reload_module(module_path: Path | str) -> None:
    """Finalize and re-initialize a loaded PKCS#11 library so it rereads its configuration.

    A token created after the library was loaded (for SoftHSM: a new ``SOFTHSM2_CONF`` or token
    directory) is only visible after this. Every session of that library in this process is closed;
    providers reopen theirs on next use. A library not loaded yet is left alone.
    """
    with _modules_lock:
        module = _modules.get(str(Path(module_path).resolve()))
    if module is None:
        return
    with module.lock:
        module.sessions.clear()
        module.generation += 1
        try:
            module.lib.reinitialize()
        except pkcs11.PKCS11Error as exc:
            raise HsmError(
                f"PKCS#11 module {module.path} cannot be reloaded: {describe_error(exc)}"
            ) from None


def describe_error(exc: pkcs11.PKCS11Error) -> str:
    """One line naming the PKCS#11 failure, never more than the library said."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _pin_digest(pin: SecretStr) -> bytes:
    return hashlib.sha256(pin.get_secret_value().encode()).digest()


def token_session(module: LoadedModule, *, token_label: str, user_pin: SecretStr) -> pkcs11.Session:
    """The shared logged-in session on ``token_label``; the caller holds ``module.lock``."""
    digest = _pin_digest(user_pin)
    existing = module.sessions.get(token_label)
    if existing is not None:
        if not hmac.compare_digest(existing.pin_digest, digest):
            raise HsmPinError(
                f"PKCS#11 token {token_label!r} refused the user PIN (another PIN is logged in)"
            )
        return existing.session
    where = f"PKCS#11 token {token_label!r}"
    try:
        token = module.lib.get_token(token_label=token_label)
    except pkcs11.NoSuchToken:
        raise HsmError(
            f"{where} not found in {module.path}; initialise it or set "
            f"BASTION_CRYPTO__PKCS11__TOKEN_LABEL"
        ) from None
    except pkcs11.MultipleTokensReturned:
        raise HsmError(f"{where} is ambiguous: several tokens carry this label") from None
    except pkcs11.PKCS11Error as exc:
        raise HsmError(f"{where} cannot be listed: {describe_error(exc)}") from None
    try:
        session = token.open(rw=True, user_pin=user_pin.get_secret_value())
    except pkcs11.PinIncorrect:
        raise HsmPinError(
            f"{where} refused the user PIN (BASTION_CRYPTO__PKCS11__USER_PIN); each wrong "
            f"attempt counts towards the token's lockout"
        ) from None
    except pkcs11.PinLocked:
        raise HsmError(
            f"{where}: the user PIN is locked; the security officer must reset it"
        ) from None
    except (pkcs11.PinExpired, pkcs11.UserPinNotInitialized):
        raise HsmError(f"{where}: the user PIN is expired or was never set") from None
    except pkcs11.UserAlreadyLoggedIn:
        # Someone else in this process (not through this module's registry) logged in; sessions
        # inherit that login, so open one without a PIN rather than fail.
        try:
            session = token.open(rw=True)
        except pkcs11.PKCS11Error as exc:
            raise HsmError(f"{where} cannot open a session: {describe_error(exc)}") from None
    except pkcs11.PKCS11Error as exc:
        raise HsmError(f"{where} cannot open a session: {describe_error(exc)}") from None
    module.sessions[token_label] = TokenSession(session=session, pin_digest=digest)
    return session
