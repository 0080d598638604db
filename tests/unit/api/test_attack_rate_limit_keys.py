"""Red team: the per-credential rate-limit counter follows the credential that authenticates.

A bearer header, when present, is the only credential the app considers (``api.deps``). If the
counter took whichever of Cookie and Authorization came first, one API key used from many
addresses, each request with a made-up session cookie placed first, would be counted against a
new cookie every time and never against the key.
"""

from bastion.api.ratelimit import credential_key

BEARER = (b"authorization", b"Bearer bst_" + b"k" * 43)


def test_a_made_up_cookie_before_the_bearer_does_not_move_the_counter():
    alone = credential_key([BEARER])
    for junk in (b"a", b"b", b"c"):
        cookie = (b"cookie", b"__Host-bastion_session=" + junk)
        assert credential_key([cookie, BEARER]) == alone
        assert credential_key([BEARER, cookie]) == alone


def test_a_cookie_alone_is_still_a_credential():
    cookie = (b"cookie", b"theme=dark; __Host-bastion_session=abc")
    assert credential_key([cookie]) is not None
    assert credential_key([(b"cookie", b"theme=dark")]) is None


def test_the_session_counted_is_the_one_starlette_authenticates():
    real = credential_key([(b"cookie", b"__Host-bastion_session=real")])
    forged_first = b"__Host-bastion_session=junk; __Host-bastion_session=real"
    assert credential_key([(b"cookie", forged_first)]) == real
    two_lines = [(b"cookie", b"__Host-bastion_session=junk"), (b"cookie", forged_first[-27:])]
    assert credential_key(two_lines) == real
