"""The JWT authenticator: header, claims, reuse and re-minting."""

from __future__ import annotations

import ssl
import subprocess
import typing as t

import jwt
import pytest
import requests

from tap_usersnap.auth import UsersnapJWTAuthenticator
from tests.helpers import JWT_ID, JWT_SECRET

if t.TYPE_CHECKING:
    from pathlib import Path


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


def test_a_request_held_in_a_429_pause_leaves_with_a_fresh_token(make_sandbox):
    from singer_sdk.exceptions import RetriableAPIError

    from tap_usersnap.tap import TapUsersnap
    from tests.helpers import base_config

    # Tokens live 5 s (the sandbox refuses longer ones); the pause lasts 6 s.
    sandbox = make_sandbox(max_token_lifetime=5, projects=2, feedbacks_per_project=[1, 1])
    tap = TapUsersnap(
        config=base_config(sandbox.url, jwt_lifetime_seconds=5), parse_env_config=False
    )
    stream = tap.streams["projects"]
    rate_limited = requests.Response()
    rate_limited.status_code = 429
    rate_limited.headers["Retry-After"] = "6"
    waits = stream.backoff_wait_generator()
    next(waits)
    assert waits.send(RetriableAPIError("429", rate_limited)) == 6  # another worker's 429
    projects = list(stream.request_records(None))  # signed now, then held at the gate
    assert len(projects) == 2
    assert sandbox.auth_failures == 0


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_sandbox(make_sandbox, self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch):
    """A sandbox served over HTTPS with the self-signed certificate, no CA variables set."""
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*self_signed)
    return make_sandbox(tls=context, projects=1, feedbacks_per_project=[5])


@pytest.mark.parametrize(
    "environment",
    [
        pytest.param({}, id="no-ca-variables"),
        pytest.param({"CURL_CA_BUNDLE": ""}, id="empty-CURL_CA_BUNDLE"),
        pytest.param({"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""}, id="both-empty"),
    ],
)
def test_an_untrusted_certificate_fails_at_once_naming_what_to_check(
    tls_sandbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    environment: dict[str, str],
):
    from tap_usersnap.transport import TLSVerificationError
    from tests.helpers import base_config, sync

    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(
        TLSVerificationError, match=r"https://127\.0\.0\.1:\d+ is not trusted .*api_url.*CA_BUNDLE"
    ):
        sync(base_config(tls_sandbox.url, max_retries=2))
    assert [r for r in caplog.records if "Retrying" in r.getMessage()] == []


def test_a_certificate_named_by_requests_ca_bundle_is_trusted(
    tls_sandbox, self_signed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    from tests.helpers import base_config, sandbox_feedbacks, sync

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(self_signed[0]))
    monkeypatch.setenv("CURL_CA_BUNDLE", "")
    result = sync(base_config(tls_sandbox.url))
    assert tls_sandbox.url.startswith("https://")
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(tls_sandbox))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # the sandbox's
def test_a_short_secret_runs_without_a_warning_about_its_length(tmp_path: Path):
    from tap_usersnap.sandbox import Sandbox
    from tests.cli import run_tap
    from tests.helpers import base_config

    short = "short-usersnap-secret"  # Usersnap's choice, not the user's
    with Sandbox(jwt_id=JWT_ID, jwt_secret=short, projects=1, feedbacks_per_project=[3]) as sandbox:
        code, result = run_tap(tmp_path, base_config(sandbox.url, jwt_secret=short))
    assert code == 0, result.stderr
    assert len(result.ids()) == 3
    assert "HMAC key" not in result.stderr
    assert short not in result.stderr


def test_a_missing_ca_bundle_fails_only_a_run_that_uses_tls(
    tls_sandbox, make_sandbox, monkeypatch: pytest.MonkeyPatch
):
    from tap_usersnap.transport import TLSVerificationError
    from tests.helpers import base_config, sandbox_feedbacks, sync

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/ca.pem")
    plain = make_sandbox(projects=1, feedbacks_per_project=[5])
    result = sync(base_config(plain.url))
    assert sorted(result.ids()) == sorted(sandbox_feedbacks(plain))
    with pytest.raises(TLSVerificationError, match=r"/nonexistent/ca\.pem does not exist"):
        sync(base_config(tls_sandbox.url))
