"""The payload pipeline: snapshot bytes -> zstd -> fixed-size chunks -> AES-256-GCM -> target.

Memory stays constant whatever the database size: one read block, one chunk being sealed and the
compressor's window. The payload is the concatenation of the sealed chunks; the manifest records
each one's size and SHA-256, so verification can name the first bad chunk without decrypting, and
decryption (which authenticates each chunk again, bound to its index and to being the last one)
catches anything the hashes would miss.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Protocol

import zstandard

from bastion.backup.errors import BackupCorrupted
from bastion.backup.manifest import ChunkInfo, Manifest
from bastion.crypto import IntegrityCheckError, StreamOpener, StreamSealer

READ_BLOCK_BYTES: Final = 1024 * 1024
CHUNK_BYTES: Final = 1024 * 1024
LANE_DEPTH: Final = 4

ByteProgress = Callable[[int], None]
"""Called with the number of bytes just processed."""


class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True, slots=True)
class SealedStream:
    plaintext_bytes: int
    plaintext_sha256: str
    compressed_bytes: int
    chunks: tuple[ChunkInfo, ...]


def seal_stream(
    source: Readable,
    sink: Writable,
    *,
    sealer: StreamSealer,
    level: int,
    threads: int,
    chunk_bytes: int = CHUNK_BYTES,
    progress: ByteProgress | None = None,
) -> SealedStream:
    """Compress, chunk, seal and write ``source`` to ``sink``; return what the manifest needs."""
    compressor = zstandard.ZstdCompressor(level=level, threads=threads or -1, write_checksum=True)
    chunker = compressor.chunker(chunk_size=chunk_bytes)
    plaintext = hashlib.sha256()
    plaintext_bytes = compressed_bytes = 0
    chunks: list[ChunkInfo] = []
    # One chunk is held back so that the last one can be sealed as final.
    pending: bytes | None = None

    def emit(chunk: bytes, final: bool) -> None:
        sealed = sealer.seal(len(chunks), chunk, final=final)
        sink.write(sealed)
        chunks.append(ChunkInfo(size=len(sealed), sha256=hashlib.sha256(sealed).hexdigest()))

    # Hashing costs as much as zstd here (SHA-256 twice over): it runs beside the compressor.
    with _Lane() as hashing, _Lane() as sealing:
        while block := source.read(READ_BLOCK_BYTES):
            hashing.submit(plaintext.update, block)
            plaintext_bytes += len(block)
            for piece in chunker.compress(block):
                compressed_bytes += len(piece)
                if pending is not None:
                    sealing.submit(emit, pending, False)
                pending = piece
            if progress is not None:
                progress(len(block))
        for piece in chunker.finish():  # type: ignore[no-untyped-call]  # zstandard's stub
            compressed_bytes += len(piece)
            if pending is not None:
                sealing.submit(emit, pending, False)
            pending = piece
        # zstd always writes a frame header, so there is at least one chunk.
        sealing.submit(emit, pending or b"", True)
    return SealedStream(
        plaintext_bytes=plaintext_bytes,
        plaintext_sha256=plaintext.hexdigest(),
        compressed_bytes=compressed_bytes,
        chunks=tuple(chunks),
    )


class _Lane:
    """Runs callables on one worker thread in submission order, with at most ``depth`` queued
    (so memory stays bounded); the first failure is raised in the caller's thread. Used to
    overlap the stages of the pipeline: zstd, hashlib, AES-GCM and file I/O release the GIL."""

    def __init__(self, depth: int = LANE_DEPTH) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bastion-backup")
        self._queued: deque[Future[None]] = deque()
        self._depth = depth

    def submit(self, work: Callable[..., None], *args: object) -> None:
        self._queued.append(self._executor.submit(work, *args))
        while len(self._queued) > self._depth:
            self._queued.popleft().result()

    def __enter__(self) -> _Lane:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        try:
            if error is None:
                while self._queued:
                    self._queued.popleft().result()
        finally:
            self._executor.shutdown(wait=True, cancel_futures=True)


def open_stream(
    payload: Readable,
    manifest: Manifest,
    *,
    opener: StreamOpener | None,
    sink: Writable | None = None,
    progress: ByteProgress | None = None,
) -> None:
    """Check every chunk of ``payload`` against ``manifest`` and, with an ``opener``, decrypt,
    decompress and check the plaintext's size and SHA-256, writing it to ``sink`` if given.

    Raises BackupCorrupted naming the first chunk that is missing, short, altered or fails
    authentication, or the payload part (trailing bytes, plaintext digest) that does not match.
    Without an opener only the sealed bytes are checked (no master key needed).
    """
    backup = manifest.backup_id
    plaintext = _PlaintextSink(sink)
    # A stream writer hands the output on in bounded pieces: a chunk of zeros (SQLite free
    # pages) can expand a thousandfold, which a one-shot decompress would hold in memory.
    decompressor = zstandard.ZstdDecompressor().stream_writer(
        plaintext,  # type: ignore[arg-type]  # only write() is used; the stub asks for IO[bytes]
        write_size=READ_BLOCK_BYTES,
        closefd=False,
    )
    last = len(manifest.chunks) - 1

    def expand(index: int, chunk: bytes) -> None:
        try:
            decompressor.write(chunk)
        except zstandard.ZstdError as exc:
            raise BackupCorrupted(
                f"backup {backup}: chunk {index} does not decompress ({exc})"
            ) from None

    with _Lane() as expanding:
        for index, expected in enumerate(manifest.chunks):
            sealed = _read_exactly(payload, expected.size)
            if len(sealed) != expected.size:
                raise BackupCorrupted(
                    f"backup {backup}: chunk {index} of {last + 1} is truncated "
                    f"({len(sealed)} of {expected.size} bytes; the payload ends early)"
                )
            if hashlib.sha256(sealed).hexdigest() != expected.sha256:
                raise BackupCorrupted(
                    f"backup {backup}: chunk {index} of {last + 1} does not match its SHA-256 "
                    f"in the manifest (altered in storage or transfer)"
                )
            if opener is not None:
                try:
                    chunk = opener.open(index, sealed, final=index == last)
                except IntegrityCheckError as exc:
                    raise BackupCorrupted(f"backup {backup}: {exc.detail}") from None
                expanding.submit(expand, index, chunk)
            if progress is not None:
                progress(expected.size)
    if payload.read(1):
        raise BackupCorrupted(f"backup {backup}: payload has bytes after its last chunk")
    if opener is None:
        return
    decompressor.flush()  # type: ignore[no-untyped-call]  # zstandard's stub
    if plaintext.size != manifest.plaintext_bytes:
        raise BackupCorrupted(
            f"backup {backup}: restored {plaintext.size} bytes, manifest says "
            f"{manifest.plaintext_bytes}"
        )
    if plaintext.digest.hexdigest() != manifest.plaintext_sha256:
        raise BackupCorrupted(f"backup {backup}: plaintext SHA-256 does not match the manifest")


class _PlaintextSink:
    """Counts and hashes the decompressed bytes on their way to the real sink (if any)."""

    def __init__(self, sink: Writable | None) -> None:
        self._sink = sink
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        if self._sink is not None:
            self._sink.write(data)
        return len(data)


def _read_exactly(source: Readable, size: int) -> bytes:
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = source.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
