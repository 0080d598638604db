"""A fresh SoftHSM2 token per test, in a temporary directory, and a provider over it.

SoftHSM2 (Debian package ``softhsm2``) missing: the tests are skipped with the reason, except with
CI=true, where the run fails instead: a CI that silently skips the HSM proves nothing about it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from bastion.crypto.kms.pkcs11 import Pkcs11KeyProvider, create_master_key, reload_module
from bastion.settings import Pkcs11Settings

DEBIAN_PACKAGE = "softhsm2"
MODULE_CANDIDATES = (
    Pkcs11Settings().module_path,
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),
)
TOKEN_LABEL = "bastion-test"
USER_PIN = "4711-user"
SO_PIN = "0815-officer"
KEY_LABEL = "bastion-kek"


@dataclass(frozen=True)
class SoftHsmToken:
    module_path: Path
    token_label: str
    user_pin: SecretStr
    directory: Path

    def provider(
        self, *, key_label: str = KEY_LABEL, user_pin: str | None = None
    ) -> Pkcs11KeyProvider:
        return Pkcs11KeyProvider(
            module_path=self.module_path,
            token_label=self.token_label,
            key_label=key_label,
            user_pin=SecretStr(user_pin) if user_pin is not None else self.user_pin,
        )

    def create_key(self, key_label: str = KEY_LABEL) -> bool:
        return create_master_key(
            module_path=self.module_path,
            token_label=self.token_label,
            key_label=key_label,
            user_pin=self.user_pin,
        )


def require_softhsm() -> tuple[str, Path]:
    """``softhsm2-util`` and the PKCS#11 module, or skip (fail with CI=true) naming the package."""
    util = shutil.which("softhsm2-util")
    module = next((path for path in MODULE_CANDIDATES if path.is_file()), None)
    if util is None or module is None:
        missing = "softhsm2-util" if util is None else "libsofthsm2.so"
        reason = (
            f"SoftHSM2 is not installed ({missing} not found): apt-get install {DEBIAN_PACKAGE}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: the pkcs11 provider must be tested)", pytrace=False)
        pytest.skip(reason)
    return util, module


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsmToken]:
    """An initialised, empty token in ``tmp_path``; the library is reloaded to see it."""
    util, module = require_softhsm()
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    config = tmp_path / "softhsm2.conf"
    config.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    # SoftHSM reads SOFTHSM2_CONF when the library is initialised: the operator's environment,
    # which the test plays here.
    monkeypatch.setenv("SOFTHSM2_CONF", str(config))
    subprocess.run(
        [
            util,
            "--init-token",
            "--free",
            "--label",
            TOKEN_LABEL,
            "--pin",
            USER_PIN,
            "--so-pin",
            SO_PIN,
        ],
        env={**os.environ, "SOFTHSM2_CONF": str(config)},
        check=True,
        capture_output=True,
        timeout=30,
    )
    # A library loaded by an earlier test still reads the previous test's token directory.
    reload_module(module)
    yield SoftHsmToken(
        module_path=module, token_label=TOKEN_LABEL, user_pin=SecretStr(USER_PIN), directory=tokens
    )
    reload_module(module)


@pytest.fixture
def provider(softhsm: SoftHsmToken) -> Pkcs11KeyProvider:
    """A provider over a freshly generated AES-256 master key in the token."""
    assert softhsm.create_key()
    return softhsm.provider()
