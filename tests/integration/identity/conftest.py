import pytest

from bastion.db import make_engine, upgrade_to_head
from tests.support.identity import make_rig


@pytest.fixture
def engine(database_url):
    engine = make_engine(database_url, create=True)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def rig(engine, tmp_path):
    return make_rig(engine, tmp_path / "mail")
