"""The JWT authenticator: header, claims, reuse and re-minting."""

from __future__ import annotations

import os

import jwt
import pytest
import requests

from tap_usersnap.auth import UsersnapJWTAuthenticator
from tests.helpers import JWT_ID, JWT_SECRET


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_authenticator(clock: FakeClock) -> UsersnapJWTAuthenticator:
    return UsersnapJWTAuthenticator(jwt_id=JWT_ID, jwt_secret=JWT_SECRET, clock=clock)


def bearer(authenticator: UsersnapJWTAuthenticator) -> str:
    request = requests.Request("GET", "http://127.0.0.1/v0.1/projects").prepare()
    header = authenticator.authenticate_request(request).headers["Authorization"]
    assert header.startswith("Bearer ")
    return header.removeprefix("Bearer ")


def test_token_is_hs256_with_kid_and_short_lifetime():
    clock = FakeClock()
    token = bearer(make_authenticator(clock))
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    assert header["kid"] == JWT_ID
    claims = jwt.decode(
        token, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["iat"] == int(clock.now)
    assert 0 < claims["exp"] - claims["iat"] <= 3600


def test_token_is_reused_while_fresh_and_reminted_before_expiry():
    clock = FakeClock()
    authenticator = make_authenticator(clock)
    first = bearer(authenticator)
    clock.now += 200  # lifetime 300 s, refresh margin 60 s
    assert bearer(authenticator) == first
    clock.now += 50  # 50 s left: inside the margin
    second = bearer(authenticator)
    assert second != first
    claims = jwt.decode(
        second, JWT_SECRET, algorithms=["HS256"], options={"verify_exp": False, "verify_iat": False}
    )
    assert claims["exp"] > clock.now + 60


def test_no_token_sent_is_ever_expired_over_a_long_run():
    clock = FakeClock()
    authenticator = make_authenticator(clock)
    for _ in range(500):
        claims = jwt.decode(
            bearer(authenticator),
            JWT_SECRET,
            algorithms=["HS256"],
            options={"verify_exp": False, "verify_iat": False},
        )
        assert claims["exp"] > clock.now
        clock.now += 7.3


def test_secret_is_not_in_repr():
    authenticator = make_authenticator(FakeClock())
    assert JWT_SECRET not in repr(authenticator)
    assert JWT_ID in repr(authenticator)


def test_lifetime_over_an_hour_is_refused():
    with pytest.raises(ValueError, match="between 1 and 3600"):
        UsersnapJWTAuthenticator(jwt_id=JWT_ID, jwt_secret=JWT_SECRET, lifetime_seconds=7200)


def test_tokens_expiring_mid_sync_are_reminted(make_sandbox):
    import time

    from tests.helpers import base_config, sandbox_feedbacks, sync

    # The sandbox refuses tokens living longer than 5 s; the sync lasts several lifetimes.
    sandbox = make_sandbox(max_token_lifetime=5, feedbacks_per_project=[250, 120, 37])
    sandbox.faults.latency_ms = 250
    config = base_config(sandbox.url, jwt_lifetime_seconds=5, page_size=5, max_concurrency=1)
    started = time.monotonic()
    result = sync(config)
    assert time.monotonic() - started > 10
    assert sandbox.auth_failures == 0
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(sandbox))


def test_tls_verification_stays_on():
    from tap_usersnap.tap import TapUsersnap

    tap = TapUsersnap(config={"jwt_id": JWT_ID, "jwt_secret": JWT_SECRET}, parse_env_config=False)
    assert tap.config["api_url"].startswith("https://")
    assert tap.http_session.verify is True or os.path.isfile(tap.http_session.verify)
