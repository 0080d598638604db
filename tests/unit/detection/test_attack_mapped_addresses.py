"""Red team: on a dual-stack listener every IPv4 client arrives as ``::ffff:a.b.c.d``.

Taken as IPv6, every such address falls in the same ``::/64`` (and ``::/48``): one IPv4
attacker's failed logins would block sign-in from *every* IPv4 client, and a sign-in from any
IPv4 network would look like the same, known network to new-device detection. A mapped address
is the IPv4 address it carries.
"""

import pytest

from bastion.detection.devices import network_of, source_of

ATTACKER = "::ffff:203.0.113.9"
BYSTANDER = "::ffff:198.51.100.7"


def test_two_ipv4_clients_of_a_dual_stack_listener_are_two_sources():
    assert source_of(ATTACKER) == "203.0.113.9"
    assert source_of(ATTACKER) != source_of(BYSTANDER)
    assert source_of(ATTACKER) == source_of("203.0.113.9")


def test_two_ipv4_networks_of_a_dual_stack_listener_are_two_networks():
    assert network_of(ATTACKER) == network_of("203.0.113.9") == "203.0.113.0/24"
    assert network_of(ATTACKER) != network_of(BYSTANDER)


@pytest.mark.parametrize(
    ("ip", "source"),
    [("2001:db8::1", "2001:db8::/64"), ("2001:db8::2", "2001:db8::/64"), ("10.0.0.1", "10.0.0.1")],
)
def test_plain_addresses_keep_their_blocks(ip, source):
    assert source_of(ip) == source
