"""Source blocks: credential stuffing (many accounts failing from one address) and raw failures."""

import pytest
from sqlalchemy import select

from bastion.alerts.models import SecurityEventRow
from bastion.detection import SourceBlocked
from bastion.identity import ClientInfo, InvalidCredentials
from tests.integration.detection.conftest import PASSWORD

STUFFER = ClientInfo(ip="198.51.100.66", user_agent="python-requests/2.32")
BYSTANDER = ClientInfo(ip="198.51.100.67", user_agent="python-requests/2.32")


def test_many_accounts_failing_from_one_address_block_it_with_a_retry_after(rig):
    rig.signup("victim@example.com")
    for n in range(4):
        with pytest.raises(InvalidCredentials):
            rig.login(f"user{n}@example.com", "leaked password 1", STUFFER)
    with pytest.raises(SourceBlocked) as blocked:
        rig.login("victim@example.com", PASSWORD, STUFFER)
    assert 0 < blocked.value.retry_after <= 3600
    # The block is the address's, not the account's: the owner signs in from elsewhere.
    assert rig.login("victim@example.com", PASSWORD, BYSTANDER).token
    with rig.uow.begin() as session:
        (event,) = session.scalars(
            select(SecurityEventRow).where(SecurityEventRow.type == "source.blocked")
        ).all()
    assert event.subject == STUFFER.ip
    assert event.severity >= 40


def test_the_same_account_failing_again_is_not_counted_as_stuffing(rig):
    rig.signup("victim@example.com")
    for _ in range(4):
        with pytest.raises(InvalidCredentials):
            rig.login("victim@example.com", "wrong password again", STUFFER)
    rig.advance(seconds=301)  # past the lock; the source was never blocked
    assert rig.login("victim@example.com", PASSWORD, STUFFER).token


def test_the_block_ends_by_itself(rig):
    for n in range(4):
        with pytest.raises(InvalidCredentials):
            rig.login(f"user{n}@example.com", "leaked password 1", STUFFER)
    rig.advance(seconds=3601)
    with pytest.raises(InvalidCredentials):
        rig.login("user9@example.com", "leaked password 1", STUFFER)


def test_ipv6_sources_are_blocked_by_their_64(rig):
    for n in range(4):
        client = ClientInfo(ip=f"2001:db8:1:2::{n + 1}", user_agent="x")
        with pytest.raises(InvalidCredentials):
            rig.login(f"user{n}@example.com", "leaked password 1", client)
    with pytest.raises(SourceBlocked):
        rig.login("other@example.com", "x", ClientInfo(ip="2001:db8:1:2::ffff", user_agent="x"))
