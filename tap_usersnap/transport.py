"""The HTTP session all streams share: the 429 gate, fresh tokens, failures that name a cause."""

from __future__ import annotations

import os
import re
import ssl
import sys
import threading
import time
import typing as t
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError, NewConnectionError

from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    from collections.abc import Iterator

    from tap_usersnap.auth import UsersnapJWTAuthenticator

CA_BUNDLE_VARIABLES = "REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE"
PROXY_VARIABLES = "HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and NO_PROXY"
#: How http.client reports a proxy's refusal of a CONNECT tunnel (status, reason).
_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (4\d\d\b.*)")
#: TLS failures of the connection rather than of the handshake's terms: a retry may cure them.
TRANSIENT_TLS_ERRORS = (ssl.SSLEOFError, ssl.SSLSyscallError, ssl.SSLZeroReturnError)


class TLSVerificationError(UsersnapError):
    """The server's certificate is not trusted: retrying cannot help."""


class TLSHandshakeError(UsersnapError):
    """The server does not speak TLS as the client does (often plain HTTP): permanent."""


class ProxyRefusedError(UsersnapError):
    """The proxy refuses the tunnel (authentication, policy): retrying cannot help."""


class UnresolvableHostError(UsersnapError):
    """The API host has no address: retrying cannot help."""


class RateLimitGate:
    """A pause shared by every request of the tap, so one 429 slows all workers down."""

    def __init__(self, clock: t.Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._resume_at = 0.0
        self._lock = threading.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request for at least ``seconds`` from now."""
        with self._lock:
            self._resume_at = max(self._resume_at, self._clock() + seconds)

    def wait(self) -> None:
        """Block until the shared pause, if any, is over."""
        while (delay := self._resume_at - self._clock()) > 0:
            time.sleep(delay)


class GatedHTTPAdapter(HTTPAdapter):
    """Sends through the shared rate-limit gate, signed as the request leaves.

    The SDK signs a request when it prepares it; a request that then waits out a long
    429 pause would leave with an expired token, so it is signed again after the wait.
    """

    def __init__(
        self, gate: RateLimitGate, authenticator: UsersnapJWTAuthenticator, pool_size: int
    ) -> None:
        super().__init__(pool_connections=pool_size, pool_maxsize=pool_size)
        self.gate = gate
        self.authenticator = authenticator

    @override
    def send(
        self, request: requests.PreparedRequest, *args: t.Any, **kwargs: t.Any
    ) -> requests.Response:
        self.gate.wait()
        self.authenticator.authenticate_request(request)
        try:
            return super().send(request, *args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if failure := permanent_failure(exc):
                raise failure from exc
            raise


def permanent_failure(exc: requests.exceptions.ConnectionError) -> UsersnapError | None:
    """The failure no retry can cure: an untrusted certificate, a failed handshake, no address."""
    where = origin(exc.request.url if exc.request is not None else None)
    if untrusted := find_cause(exc, ssl.SSLCertVerificationError):
        return TLSVerificationError(
            f"The TLS certificate of {where} is not trusted "
            f"({untrusted.verify_message or untrusted.reason}): "
            f"check the setting api_url, and that {CA_BUNDLE_VARIABLES}, if set, names a "
            "CA bundle that signs it"
        )
    tls = find_cause(exc, ssl.SSLError)
    if tls is not None and not isinstance(tls, TRANSIENT_TLS_ERRORS):
        return TLSHandshakeError(
            f"The TLS handshake with {where} failed ({tls.reason or type(tls).__name__}): "
            "check the setting api_url (its scheme: a plain-HTTP server answers https:// "
            "like this) and any proxy in between"
        )
    if isinstance(exc, requests.exceptions.ProxyError) and (
        refusal := next(filter(None, map(_tunnel_refusal, _causes(exc))), None)
    ):
        return ProxyRefusedError(
            f"The proxy for {where} refused to connect to it ({refusal}): check "
            f"{PROXY_VARIABLES} in the environment, and the proxy's credentials"
        )
    if unresolved := find_cause(exc, NameResolutionError):
        reason = find_cause(unresolved, OSError)
        return UnresolvableHostError(
            f"Cannot resolve the host of {where} "
            f"({reason.strerror if reason else 'no address'}): check the setting api_url"
        )
    return None


def _tunnel_refusal(exc: BaseException) -> str | None:
    """The status a proxy refused a tunnel with, if ``exc`` says so (5xx may pass: not here)."""
    match = _TUNNEL_REFUSED.match(str(exc)) if type(exc) is OSError else None
    return match.group(1) if match else None


def connect_failure(exc: BaseException) -> OSError | None:
    """Why a connection could not be opened (refused, unreachable), if that is the failure."""
    failure = find_cause(exc, NewConnectionError)
    return find_cause(failure, OSError) if failure else None


_E = t.TypeVar("_E", bound=BaseException)


def find_cause(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` along ``exc``'s causes (requests and urllib3 wrap theirs)."""
    for cause in _causes(exc):
        if isinstance(cause, kind):
            return cause
    return None


def _causes(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        reason = getattr(exc, "reason", None)
        wrapped = exc.args[0] if exc.args else None
        if isinstance(reason, BaseException):
            exc = reason
        elif isinstance(wrapped, BaseException):
            exc = wrapped
        else:
            exc = exc.__cause__ or exc.__context__


def origin(url: str | None) -> str:
    """``scheme://host:port`` of ``url``, without any credentials it may carry."""
    parts = urlsplit(url or "")
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def shared_session(
    api_url: str, gate: RateLimitGate, authenticator: UsersnapJWTAuthenticator, pool_size: int
) -> requests.Session:
    """One connection pool, sized for the concurrent workers, behind the 429 gate.

    Proxy and CA-bundle variables are read once, with requests' own rules (an empty
    ``CURL_CA_BUNDLE`` counts as unset): requests would otherwise scan the whole
    environment on every request. Verification is never off.
    """
    session = requests.Session()
    settings = session.merge_environment_settings(
        api_url, proxies={}, stream=None, verify=True, cert=None
    )
    verifies = urlsplit(api_url).scheme == "https"  # requests ignores a CA bundle otherwise
    if verifies and isinstance(settings["verify"], str) and not os.path.exists(settings["verify"]):
        msg = (
            f"The CA bundle {settings['verify']} does not exist: check {CA_BUNDLE_VARIABLES} "
            "in the environment"
        )
        raise TLSVerificationError(msg)
    session.proxies = settings["proxies"]
    session.verify = settings["verify"]
    session.trust_env = False
    adapter = GatedHTTPAdapter(gate, authenticator, pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
