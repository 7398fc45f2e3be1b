"""JWT authentication for the Usersnap platform API."""

from __future__ import annotations

import sys
import threading
import time
import typing as t
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning
from singer_sdk.authenticators import APIAuthenticatorBase

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import requests

# Usersnap verifies HS256 only; HS512 and "none" are rejected by design.
JWT_ALGORITHM = "HS256"
MAX_LIFETIME_SECONDS = 3600

# Usersnap issues the secret, not the user: a warning about its length on every run is noise.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


class UsersnapJWTAuthenticator(APIAuthenticatorBase):
    """Signs short-lived HS256 JWTs with the shared secret and reuses them while fresh.

    The SDK applies the authenticator several times per request (prepare, send, every
    retry), so the token is cached and only re-minted when it is about to expire.
    """

    def __init__(
        self,
        *,
        jwt_id: str,
        jwt_secret: str,
        lifetime_seconds: int = 300,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if not 0 < lifetime_seconds <= MAX_LIFETIME_SECONDS:
            msg = f"JWT lifetime must be between 1 and {MAX_LIFETIME_SECONDS} seconds"
            raise ValueError(msg)
        self._jwt_id = jwt_id
        self._jwt_secret = jwt_secret
        self._lifetime = lifetime_seconds
        # Re-sign with a fifth of the life (at most a minute) left: room for a slow request.
        self._refresh_margin = min(60.0, lifetime_seconds / 5)
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(jwt_id={self._jwt_id!r}, jwt_secret=<redacted>)"

    @property
    def token(self) -> str:
        """The current token, minted anew once less than the refresh margin is left."""
        with self._lock:
            now = self._clock()
            if self._token is None or now >= self._expires_at - self._refresh_margin:
                issued_at = int(now)
                self._expires_at = issued_at + self._lifetime
                self._token = jwt.encode(
                    {"iat": issued_at, "exp": issued_at + self._lifetime},
                    self._jwt_secret,
                    algorithm=JWT_ALGORITHM,
                    headers={"kid": self._jwt_id},
                )
            return self._token

    @override
    def authenticate_request(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request
