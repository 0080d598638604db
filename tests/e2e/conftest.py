from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A real `bastion serve` over TLS on a free port, shared by one module's read-only tests."""
    process = ServerProcess(tmp_path_factory.mktemp("server") / "data")
    process.init()
    process.start()
    yield process
    process.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """An initialised but not yet started server, for tests that break or restart it."""
    process = ServerProcess(tmp_path / "data")
    process.init()
    yield process
    process.stop()
