"""What counts as the same device: user-agent family and network, never versions or hosts."""

import hashlib
import hmac

import pytest

from bastion.detection.devices import fingerprint, network_of, source_of, user_agent_family

FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
FIREFOX_LINUX_NEXT = "Mozilla/5.0 (X11; Linux x86_64; rv:129.0) Gecko/20100101 Firefox/129.0"
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36 Edg/120.0"
)
CHROME_ANDROID = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/120.0 Mobile Safari"


class FakeMac:
    def system_mac(self, purpose, message):
        return hmac.new(purpose.encode(), message, hashlib.sha256).digest()


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        (FIREFOX_LINUX, "firefox/linux"),
        (EDGE_WINDOWS, "edge/windows"),
        (CHROME_ANDROID, "chrome/android"),
        ("python-httpx/0.28.1", "python-httpx"),
        ("curl/8.5.0", "curl"),
        (None, "unknown"),
        ("", "unknown"),
        ("   ", "other"),
    ],
)
def test_user_agent_family_drops_versions(agent, family):
    assert user_agent_family(agent) == family


@pytest.mark.parametrize(
    ("ip", "network"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
        ("not an address", "unknown"),
        (None, "unknown"),
    ],
)
def test_network_is_the_24_or_the_48(ip, network):
    assert network_of(ip) == network


def test_blocks_apply_to_an_ipv4_address_or_an_ipv6_64():
    assert source_of("198.51.100.7") == "198.51.100.7"
    assert source_of("2001:db8:1:2::99") == "2001:db8:1:2::/64"


def test_a_browser_update_or_a_new_address_in_the_same_network_is_the_same_device():
    keys = FakeMac()
    same = fingerprint(keys, user_id="u1", user_agent=FIREFOX_LINUX, ip="203.0.113.7")
    assert same == fingerprint(keys, user_id="u1", user_agent=FIREFOX_LINUX_NEXT, ip="203.0.113.9")
    assert same != fingerprint(keys, user_id="u1", user_agent=EDGE_WINDOWS, ip="203.0.113.7")
    assert same != fingerprint(keys, user_id="u1", user_agent=FIREFOX_LINUX, ip="198.51.100.7")
    assert same != fingerprint(keys, user_id="u2", user_agent=FIREFOX_LINUX, ip="203.0.113.7")
