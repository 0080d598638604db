from ipaddress import ip_address, ip_network

from hypothesis import given
from hypothesis import strategies as st

from bastion.api.middleware import resolve_client_address

PROXIES = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert resolve_client_address("198.51.100.7", "203.0.113.9", PROXIES) == "198.51.100.7"


def test_forwarded_for_is_believed_from_a_trusted_proxy():
    assert resolve_client_address("10.1.2.3", "203.0.113.9", PROXIES) == "203.0.113.9"


def test_a_spoofed_leftmost_entry_is_not_believed():
    # The client sent "X-Forwarded-For: 1.1.1.1"; the proxy appended the real address.
    forwarded = "1.1.1.1, 203.0.113.9"
    assert resolve_client_address("10.1.2.3", forwarded, PROXIES) == "203.0.113.9"


def test_trusted_hops_are_skipped():
    forwarded = "203.0.113.9, 10.9.9.9"
    assert resolve_client_address("10.1.2.3", forwarded, PROXIES) == "203.0.113.9"


def test_malformed_entry_falls_back_to_the_last_trustworthy_hop():
    assert resolve_client_address("10.1.2.3", "evil, not-an-ip", PROXIES) == "10.1.2.3"


def test_ipv6_proxies_work():
    assert resolve_client_address("fd00::1", "2001:db8::5", PROXIES) == "2001:db8::5"


@given(st.text(max_size=200))
def test_any_header_yields_an_address_or_the_peer(forwarded):
    result = resolve_client_address("10.1.2.3", forwarded, PROXIES)
    assert result == "10.1.2.3" or any(_same(result, hop) for hop in forwarded.split(","))


def _same(address, hop):
    try:
        return ip_address(hop.strip()) == ip_address(address)
    except ValueError:
        return False
