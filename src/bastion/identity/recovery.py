"""Recovery codes: ten single-use codes shown once, stored as argon2id hashes.

Each code has 80 random bits (16 base32 characters, grouped by four for reading aloud). Below
112 bits ASVS V6.5.2 asks for a salted password hash rather than a plain one, hence argon2id; a
recovery login verifies at most ten hashes, and happens rarely.
"""

from __future__ import annotations

import base64
import secrets
from typing import Final

RECOVERY_CODE_COUNT: Final = 10
RECOVERY_CODE_BYTES: Final = 10  # 80 bits
GROUP_CHARS: Final = 4


def new_codes() -> list[str]:
    return [_format(secrets.token_bytes(RECOVERY_CODE_BYTES)) for _ in range(RECOVERY_CODE_COUNT)]


def _format(raw: bytes) -> str:
    text = base64.b32encode(raw).decode("ascii").lower()
    return "-".join(text[i : i + GROUP_CHARS] for i in range(0, len(text), GROUP_CHARS))


def canonical(code: str) -> str:
    """What is hashed and compared: lower-case, without separators or spaces, as users retype."""
    return "".join(c for c in code.lower() if c.isalnum())


def looks_like_recovery_code(code: str) -> bool:
    return len(canonical(code)) == len(_format(bytes(RECOVERY_CODE_BYTES)).replace("-", ""))
