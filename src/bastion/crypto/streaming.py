"""Streaming encryption for large objects (backups): AES-256-GCM in chunks, constant memory.

Recipe, no knobs::

    keys = StreamKeys(provider)
    sealer, wrapped = keys.new_stream(stream_id)      fresh random key, wrapped by the master key
    sealed = sealer.seal(index, chunk, final=False)   chunks numbered 0, 1, 2 ...; the last final
    opener = keys.open_stream(stream_id, wrapped)     KeyUnwrapError under another master key
    chunk = opener.open(index, sealed, final=...)     IntegrityCheckError naming the chunk

Construction. Each stream has its own random 256-bit key, wrapped by the master-key provider with
a context naming the stream (``wrap_context("stream", stream_id, ...)``), so a wrapped key moved to
another stream does not unwrap. The AES-GCM key is HKDF-SHA256 of that key with the stream id in
``info``; the nonce is the chunk index as a 96-bit big-endian integer. A nonce repeats only if one
key seals two chunks with the same index, which cannot happen: the key is used for one stream only
and indexes only go up (NIST SP 800-38D section 8.2.1, deterministic construction). The associated
data binds the stream id, the chunk index and whether the chunk is the last one, so a chunk moved
to another stream or position fails, and so does a stream cut at a chunk boundary (its new last
chunk was not sealed as final) or extended.
"""

from __future__ import annotations

import secrets
import struct
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bastion.crypto import envelope
from bastion.crypto.errors import IntegrityCheckError
from bastion.crypto.kms.base import KeyProvider
from bastion.crypto.primitives import DATA_KEY_BYTES, hkdf_sha256

STREAM_KEY_INFO: Final = b"bastion:stream:v1:"
STREAM_AAD_LABEL: Final = b"bastion:stream-chunk:v1"
STREAM_WRAP_SCOPE: Final = "stream"
STREAM_WRAP_VERSION: Final = 1
TAG_BYTES: Final = 16
MAX_STREAM_ID_BYTES: Final = 128
# 2^32 chunks of 1 MiB is 4 PiB: far beyond any backup; the bound keeps the index in 4 bytes.
MAX_CHUNKS: Final = 2**32
_INDEX = struct.Struct(">Q")


def _check_stream_id(stream_id: str) -> bytes:
    encoded = stream_id.encode()
    if not encoded or len(encoded) > MAX_STREAM_ID_BYTES:
        raise ValueError(f"a stream id has 1 to {MAX_STREAM_ID_BYTES} bytes")
    return encoded


def _aad(stream_id: bytes, index: int, *, final: bool) -> bytes:
    return (
        STREAM_AAD_LABEL
        + struct.pack(">H", len(stream_id))
        + stream_id
        + _INDEX.pack(index)
        + (b"\x01" if final else b"\x00")
    )


def _nonce(index: int) -> bytes:
    if not 0 <= index < MAX_CHUNKS:
        raise ValueError(f"chunk index {index} is out of range")
    return index.to_bytes(12, "big")


def _wrap_context(stream_id: str) -> bytes:
    return envelope.wrap_context(STREAM_WRAP_SCOPE, stream_id, STREAM_WRAP_VERSION, "key")


class StreamSealer:
    """Seals the chunks of one stream, in order. Holds the key; never exposes it."""

    __slots__ = ("_aead", "_final_seen", "_next", "_stream_id")

    def __init__(self, key: bytes, stream_id: str) -> None:
        self._stream_id = _check_stream_id(stream_id)
        self._aead = AESGCM(hkdf_sha256(key, info=STREAM_KEY_INFO + self._stream_id))
        self._next = 0
        self._final_seen = False

    def seal(self, index: int, chunk: bytes, *, final: bool) -> bytes:
        """Ciphertext and 16-byte tag of ``chunk``. Chunks must come in order, once each: a
        repeated or skipped index (which would reuse or waste a nonce) raises ValueError."""
        if index != self._next or self._final_seen:
            raise ValueError(f"chunk {index} out of order (expected {self._next})")
        self._next += 1
        self._final_seen = final
        return self._aead.encrypt(_nonce(index), chunk, _aad(self._stream_id, index, final=final))


class StreamOpener:
    """Opens the chunks of one stream; every failure is IntegrityCheckError naming the chunk."""

    __slots__ = ("_aead", "_stream_id")

    def __init__(self, key: bytes, stream_id: str) -> None:
        self._stream_id = _check_stream_id(stream_id)
        self._aead = AESGCM(hkdf_sha256(key, info=STREAM_KEY_INFO + self._stream_id))

    def open(self, index: int, sealed: bytes, *, final: bool) -> bytes:
        """The plaintext of chunk ``index``; IntegrityCheckError if it was altered, moved, cut
        or is not the ``final`` chunk it claims to be."""
        if len(sealed) < TAG_BYTES:
            raise IntegrityCheckError(f"chunk {index} is truncated ({len(sealed)} bytes)")
        try:
            return self._aead.decrypt(
                _nonce(index), sealed, _aad(self._stream_id, index, final=final)
            )
        except (InvalidTag, ValueError):
            raise IntegrityCheckError(
                f"chunk {index} failed authentication (altered, moved or truncated)"
            ) from None


class StreamKeys:
    """Makes and opens per-stream keys, wrapped by the master-key provider."""

    def __init__(self, provider: KeyProvider) -> None:
        self._provider = provider

    @property
    def master_key_id(self) -> str:
        """The non-secret id of the master key that wraps new stream keys."""
        return self._provider.key_id

    def new_stream(self, stream_id: str) -> tuple[StreamSealer, bytes]:
        """A sealer under a fresh random key, and that key wrapped for ``stream_id``."""
        _check_stream_id(stream_id)
        key = secrets.token_bytes(DATA_KEY_BYTES)
        wrapped = self._provider.wrap(key, context=_wrap_context(stream_id))
        return StreamSealer(key, stream_id), wrapped

    def open_stream(self, stream_id: str, wrapped_key: bytes) -> StreamOpener:
        """An opener for ``stream_id``. Raises KeyUnwrapError (a CryptoError) if the configured
        master key did not wrap ``wrapped_key`` for this stream."""
        _check_stream_id(stream_id)
        key = self._provider.unwrap(wrapped_key, context=_wrap_context(stream_id))
        return StreamOpener(key, stream_id)
