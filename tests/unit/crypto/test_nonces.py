"""The nonce pool never hands out one nonce twice: across refills, threads and fork."""

from __future__ import annotations

import os
import threading

import pytest

from bastion.crypto.envelope import NONCE_BYTES
from bastion.crypto.nonces import POOL_NONCES, NoncePool


def test_nonces_are_96_bits_and_unique_across_refills():
    pool = NoncePool()
    nonces = [pool.take() for _ in range(3 * POOL_NONCES + 5)]
    assert {len(nonce) for nonce in nonces} == {NONCE_BYTES}
    assert len(set(nonces)) == len(nonces)


def test_threads_never_share_a_nonce():
    pool = NoncePool()
    taken: list[list[bytes]] = [[] for _ in range(8)]

    def worker(out: list[bytes]) -> None:
        for _ in range(POOL_NONCES):  # 8 threads x one pool's worth: several refills race
            out.append(pool.take())

    threads = [threading.Thread(target=worker, args=(out,)) for out in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [nonce for out in taken for nonce in out]
    assert len(flat) == 8 * POOL_NONCES
    assert len(set(flat)) == len(flat)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_pool():
    from bastion.crypto.nonces import NONCES

    NONCES.take()  # the pool the child inherits has unused nonces left
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.close(read)
        os.write(write, b"".join(NONCES.take() for _ in range(16)))
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        from_child = pipe.read()
    os.waitpid(child, 0)
    in_child = {from_child[i : i + NONCE_BYTES] for i in range(0, len(from_child), NONCE_BYTES)}
    in_parent = {NONCES.take() for _ in range(16)}
    assert len(in_child) == 16
    assert not in_child & in_parent
