"""Loopback HTTP server that imitates the Usersnap platform REST API v0.1, with fault injection.

Run it in-process through `Sandbox`, or as a separate process with `usersnap-sandbox` (then the
`/_sandbox/` control routes drive it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import struct
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, fields
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from tap_usersnap.sandbox.errors import ApiError, validation_error
from tap_usersnap.sandbox.paging import PageRequest
from tap_usersnap.sandbox.store import SandboxStore

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable, Sequence
    from types import FrameType, TracebackType

DEFAULT_JWT_ID = "sandbox-jwt-id"
DEFAULT_JWT_SECRET = "sandbox-jwt-secret-0123456789abcdef"
API_PREFIX = "/v0.1"
IAT_SKEW_SECONDS = 60
_COUNTER_LOCK = threading.Lock()
_AUTH_FAILED = ApiError(401, "WRONG_AUTH", "Authorization failed")
_ERRORTYPE_BY_STATUS = {401: "WRONG_AUTH", 403: "FORBIDDEN", 404: "NOT_FOUND", 429: "RATE_LIMITED"}
JSON_TYPE = "application/json"


@dataclass
class Faults:
    """Failure switches, all off by default; they apply to /v0.1 requests only.

    Setting any field restarts the request counter, so "every n-th" counts from the change.
    """

    latency_ms: float = 0.0
    status_every_n: int = 0
    status_code: int = 503
    # Seconds, or a header value as sent (an HTTP date in any of its forms).
    retry_after: float | str | None = None
    burst: int = 1
    truncate_every_n: int = 0
    bad_envelope_every_n: int = 0
    # A success envelope whose data lacks the list or has_more, or has them of the wrong type.
    bad_shape_every_n: int = 0
    reset_every_n: int = 0
    hang_every_n: int = 0
    hang_seconds: float = 5.0
    fail_forever_status: int | None = None
    # The project with this id (or api_key) is refused with refuse_status (403, 404, or 400
    # SITE_NOT_FOUND) once refuse_after of its requests were served: access removed, deleted.
    refuse_project: str | None = None
    refuse_status: int = 403
    refuse_after: int = 0
    # The next delete_cursors list requests that carry a cursor delete its feedback first,
    # so the API refuses the cursor (400 FEEDBACK_NOT_FOUND): deleted between two pages.
    delete_cursors: int = 0
    # GET /projects leaves this project out (deleted, or access removed): it is not refused,
    # it is no longer there.
    hide_project: str | None = None
    # GET /projects lists this project without its api_key: its assignees and metrics,
    # addressed by api_key, cannot be asked for.
    no_api_key_project: str | None = None
    # The feedback count endpoints answer this many more than the project lists, as when
    # feedback is created just after a read.
    count_offset: int = 0
    # The feedback count endpoints fail with this status (an API without them).
    count_status: int | None = None

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_count", 0)
        object.__setattr__(self, "_refuse_served", 0)

    def tick(self) -> int:
        """Count one API request and return its 1-based number since the last change."""
        with _COUNTER_LOCK:
            count: int = getattr(self, "_count", 0) + 1
            object.__setattr__(self, "_count", count)
            return count

    def as_dict(self) -> dict[str, Any]:
        """Current settings (dataclasses.asdict also works; this skips the counter)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def update(self, values: dict[str, Any]) -> None:
        """Set fields from a JSON object, rejecting unknown names and non-numbers."""
        known = {f.name for f in fields(self)}
        for name, value in values.items():
            if name not in known:
                raise validation_error(name, "unknown fault field")
            if name in {
                "refuse_project",
                "hide_project",
                "no_api_key_project",
                "retry_after",
            } and isinstance(value, str):
                pass
            elif value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise validation_error(name, "must be a number or null")
            setattr(self, name, value)

    def reset(self) -> None:
        """Switch every fault off."""
        self.update(Faults().as_dict())


def _every(n: int, every: int) -> bool:
    """True on every `every`-th request; 0 disables."""
    return every > 0 and n % every == 0


def _json_bytes(payload: Any) -> bytes:
    """Compact ASCII-only JSON: non-ASCII is escaped, emoji as surrogate pairs."""
    return json.dumps(payload, separators=(",", ":")).encode("ascii")


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    abort: bool = False


def _json_body(body: bytes) -> Any:
    """The JSON payload POST endpoints require; a missing or broken body is a 400."""
    if not body.strip():
        raise validation_error("body", "a JSON body is required (send {} for no filters)")
    try:
        return json.loads(body)
    except ValueError:
        raise validation_error("body", "invalid JSON") from None


@dataclass
class _Call:
    project: str  # project_id or api_key, depending on the endpoint
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return _json_body(self.body)


def _error(err: ApiError) -> _Response:
    return _Response(err.status, _json_bytes(err.envelope()))


def _status_fault(code: int, faults: Faults) -> _Response:
    """What a gateway or rate limiter answers: HTML for 5xx, the JSON envelope otherwise."""
    headers: tuple[tuple[str, str], ...] = ()
    if faults.retry_after is not None:
        value = faults.retry_after
        headers = (("Retry-After", value if isinstance(value, str) else f"{value:g}"),)
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = "Error"
    if code >= 500:
        page = f"<html><body><h1>{code} {reason}</h1></body></html>".encode()
        return _Response(code, page, "text/html", headers)
    errortype = _ERRORTYPE_BY_STATUS.get(code, "ERROR")
    msg = "Too many requests" if code == 429 else reason
    body = _json_bytes({"status": False, "msg": msg, "errortype": errortype, "errordata": {}})
    return _Response(code, body, JSON_TYPE, headers)


def _misshapen(envelope: dict[str, Any], nth: int) -> dict[str, Any]:
    """A success envelope whose data is not a page: the six shapes in turn."""
    data = envelope["data"]
    lists = [key for key, value in data.items() if isinstance(value, list)]
    shapes: list[dict[str, Any]] = [
        {},
        {k: v for k, v in data.items() if k not in lists},
        {k: v for k, v in data.items() if k != "has_more"} if "has_more" in data else {},
        {**data, "has_more": "false"} if "has_more" in data else {},
        {**data, **{key: {} for key in lists}},
        {**{k: v for k, v in data.items() if k != "next"}, "has_more": True},
    ]
    return {"status": True, "data": shapes[nth % len(shapes)]}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.aborted: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _Handler)

    def shutdown_request(self, request: Any) -> None:
        """Skip the polite FIN for aborted connections so the client sees a reset."""
        with self.conn_lock:
            aborted = request in self.aborted
            self.aborted.discard(request)
        if aborted:
            self.close_request(request)
        else:
            super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, _format: str, *_args: Any) -> None:
        """Stay quiet: tests and benchmarks read stdout."""

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.conn_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def handle_one_request(self) -> None:
        """Treat a client that went away (timeouts, hang faults) as a closed connection."""
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:
        """Serve GET."""
        self._dispatch()

    def do_POST(self) -> None:
        """Serve POST."""
        self._dispatch()

    def do_PUT(self) -> None:
        """Unknown to the API; answered with 404."""
        self._dispatch()

    def do_DELETE(self) -> None:
        """Unknown to the API; answered with 404."""
        self._dispatch()

    def do_PATCH(self) -> None:
        """Unknown to the API; answered with 404."""
        self._dispatch()

    def _dispatch(self) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(_error(validation_error("Content-Length", "must be a whole number")))
            return
        body = self.rfile.read(length)
        parts = urlsplit(self.path)
        sb = self.server.sandbox
        if parts.path.startswith("/_sandbox/"):
            status, payload = sb.control(self.command, parts.path, body)
            self._send(_Response(status, _json_bytes(payload)))
            return
        try:
            response = sb.handle_api(
                self.command, parts.path, parts.query, self.headers.get("Authorization"), body
            )
        except Exception:  # a sandbox bug: answer like a crashing backend, keep the trace
            traceback.print_exc()
            response = _error(ApiError(500, "INTERNAL", "Internal error"))
        sb.log_request(self.command, self.path, 0 if response.abort else response.status)
        if response.abort:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with self.server.conn_lock:
                self.server.aborted.add(self.connection)
            self.close_connection = True
            return
        self._send(response)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)


class Sandbox:
    """A Usersnap API imitation served on loopback from a background thread."""

    def __init__(
        self,
        jwt_id: str = DEFAULT_JWT_ID,
        jwt_secret: str = DEFAULT_JWT_SECRET,
        projects: int = 3,
        feedbacks_per_project: int | Sequence[int] = 250,
        seed: int = 7,
        host: str = "127.0.0.1",
        port: int = 0,
        max_token_lifetime: float = 3600,
        faults: Faults | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.jwt_id = jwt_id
        self._jwt_secret = jwt_secret
        self.max_token_lifetime = max_token_lifetime
        self.host = host
        self._port = port
        self.store = SandboxStore(projects, feedbacks_per_project, seed)
        self.faults = faults if faults is not None else Faults()
        self.requests: list[tuple[str, str, int]] = []
        self.auth_failures = 0
        #: How often each fault fired, by its switch's name (the stats report it).
        self.fired: Counter[str] = Counter()
        self.tls = tls
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[tuple[str, ...], Callable[[_Call], tuple[int, Any]]] = {
            ("GET",): self._projects,
            ("GET", "feedbacks"): self._list,
            ("POST", "feedbacks"): self._submit,
            ("GET", "feedbacks", "count"): self._count,
            ("POST", "feedbacks", "filter"): self._filter,
            ("POST", "feedbacks", "filter", "count"): self._filter_count,
            ("GET", "assignees"): self._assignees,
            ("GET", "metrics"): self._metrics,
        }  # keyed by method and the path segments after /projects/{id}

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Sandbox:
        """Bind and serve in a daemon thread; returns self for chaining."""
        if self._server is not None:
            raise RuntimeError("sandbox already started")
        self._server = _Server((self.host, self._port), self)
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="usersnap-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with server.conn_lock:
            open_connections = list(server.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (useful with port=0)."""
        if self._server is None:
            raise RuntimeError("sandbox not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL the tap uses as api_url, e.g. http://127.0.0.1:PORT/v0.1."""
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{API_PREFIX}"

    def log_request(self, method: str, path: str, status: int) -> None:
        """Record one served API request (status 0 means the connection was reset)."""
        with self._lock:
            self.requests.append((method, path, status))

    def reset_requests(self) -> None:
        """Forget the request log (in place, so held references see the reset)."""
        with self._lock:
            self.requests.clear()

    # ----------------------------------------------------------------- auth

    def _authorized(self, header: str | None) -> bool:
        """Verify the bearer JWT the way Usersnap does: HS256, kid, exp and iat."""
        if not header:
            return False
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        token = token.strip()
        try:
            head = jwt.get_unverified_header(token)
            if head.get("alg") != "HS256" or head.get("kid") != self.jwt_id:
                return False
            claims = jwt.decode(
                token,
                self._jwt_secret,
                algorithms=["HS256"],
                options={"require": ["exp", "iat"], "verify_iat": False, "verify_aud": False},
            )
        except jwt.PyJWTError:
            return False
        iat, exp = claims["iat"], claims["exp"]
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            return False
        if iat > time.time() + IAT_SKEW_SECONDS:
            return False
        return bool(exp - iat <= self.max_token_lifetime)

    # ----------------------------------------------------------------- API

    def handle_api(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> _Response:
        """Answer one non-control request, applying faults to /v0.1 routes."""
        is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        if not is_api:
            return _error(ApiError(404, "NOT_FOUND", "Not found", {"path": path}))
        faults = self.faults
        n = faults.tick()
        if faults.latency_ms > 0:
            time.sleep(faults.latency_ms / 1000)
        if faults.fail_forever_status:
            self._fire("fail_forever_status")
            return _status_fault(faults.fail_forever_status, faults)
        if _every(n, faults.reset_every_n):
            self._fire("reset_every_n")
            return _Response(0, b"", abort=True)
        if _every(n, faults.hang_every_n):
            self._fire("hang_every_n")
            time.sleep(faults.hang_seconds)
        every = faults.status_every_n
        if every > 0 and n >= every and n % every < max(1, faults.burst):
            self._fire("status_every_n")
            return _status_fault(faults.status_code, faults)
        if _every(n, faults.bad_envelope_every_n):
            self._fire("bad_envelope_every_n")
            odd = (n // faults.bad_envelope_every_n) % 2 == 1
            bad: dict[str, Any] = (
                {"status": False, "msg": "Internal error", "errortype": "INTERNAL", "errordata": {}}
                if odd
                else {"status": True}
            )
            return _Response(200, _json_bytes(bad))
        response = self._route(method, path[len(API_PREFIX) :], query, authorization, body)
        if _every(n, faults.bad_shape_every_n) and response.status == HTTPStatus.OK:
            self._fire("bad_shape_every_n")
            nth = n // faults.bad_shape_every_n
            response.body = _json_bytes(_misshapen(json.loads(response.body), nth))
        if _every(n, faults.truncate_every_n):
            self._fire("truncate_every_n")
            response.body = response.body[: len(response.body) // 2]
        return response

    def _fire(self, fault: str) -> None:
        with self._lock:
            self.fired[fault] += 1

    def _route(
        self, method: str, path: str, query: str, authorization: str | None, body: bytes
    ) -> _Response:
        segments = [unquote(s) for s in path.split("/") if s]
        endpoint = self._match(method, segments)
        if endpoint is None:
            return _error(ApiError(404, "NOT_FOUND", "Not found", {"path": API_PREFIX + path}))
        if not self._authorized(authorization):
            with self._lock:
                self.auth_failures += 1
            return _error(_AUTH_FAILED)
        call = _Call(
            segments[1] if len(segments) > 1 else "", parse_qs(query, keep_blank_values=True), body
        )
        if self._refused(call.project):
            status = self.faults.refuse_status
            if status == HTTPStatus.BAD_REQUEST:  # how the API answers for a deleted project
                return _error(ApiError(status, "SITE_NOT_FOUND", "Site does not exist"))
            reason = HTTPStatus(status).phrase
            return _error(ApiError(status, _ERRORTYPE_BY_STATUS.get(status, "ERROR"), reason))
        try:
            status, data = endpoint(call)
        except ApiError as err:
            return _error(err)
        return _Response(status, _json_bytes({"status": True, "data": data}))

    def _match(self, method: str, seg: list[str]) -> Callable[[_Call], tuple[int, Any]] | None:
        """Pick the endpoint for a path, or None (404)."""
        if not seg or seg[0] != "projects" or len(seg) == 2:
            return None
        return self._routes.get((method, *seg[2:]))

    def _refused(self, project: str) -> bool:
        """Whether the refuse_project fault applies to this request for ``project``."""
        faults = self.faults
        wanted = faults.refuse_project
        if not wanted or project not in {
            wanted,
            *(p["api_key"] for p in self.store.projects() if p["project_id"] == wanted),
        }:
            return False
        with self._lock:
            served = getattr(faults, "_refuse_served", 0)
            object.__setattr__(faults, "_refuse_served", served + 1)
        return served >= faults.refuse_after

    def _delete_cursor(self, call: _Call, after: str | None) -> None:
        """The delete_cursors fault: the cursor's feedback goes just before it is used."""
        with self._lock:
            if not after or self.faults.delete_cursors <= 0:
                return
            object.__setattr__(self.faults, "delete_cursors", self.faults.delete_cursors - 1)
        with contextlib.suppress(KeyError):
            self.store.delete_feedback(call.project, after)

    def _projects(self, _call: _Call) -> tuple[int, Any]:
        hidden = self.faults.hide_project
        projects = [p for p in self.store.projects() if p["project_id"] != hidden]
        for project in projects:
            if project["project_id"] == self.faults.no_api_key_project:
                del project["api_key"]
        return 200, {"has_more": False, "count": len(projects), "projects": projects}

    def _list(self, call: _Call) -> tuple[int, Any]:
        self.store.check_project(call.project)  # an unknown project wins over a bad limit
        page = PageRequest.from_query(call.query)
        self._delete_cursor(call, page.after)
        return 200, self.store.list_feedbacks(call.project, page.limit, page.after, page.before)

    def _count_fault(self) -> None:
        """The count_status fault: the count endpoints fail."""
        if status := self.faults.count_status:
            raise ApiError(status, _ERRORTYPE_BY_STATUS.get(status, "ERROR"), "Count failed")

    def _count(self, call: _Call) -> tuple[int, Any]:
        self._count_fault()
        return 200, {"total_count": self.store.count(call.project) + self.faults.count_offset}

    def _filter(self, call: _Call) -> tuple[int, Any]:
        self.store.check_project(call.project)
        page = PageRequest.from_query(call.query)
        self._delete_cursor(call, page.after)
        data = self.store.filter_feedbacks(
            call.project, call.json(), page.limit, page.after, page.before
        )
        return 200, data

    def _filter_count(self, call: _Call) -> tuple[int, Any]:
        self._count_fault()
        self.store.check_project(call.project)
        total = self.store.filter_count(call.project, call.json()) + self.faults.count_offset
        return 200, {"total_count": total}

    def _assignees(self, call: _Call) -> tuple[int, Any]:
        return 200, {"users": self.store.assignees(call.project)}

    def _metrics(self, call: _Call) -> tuple[int, Any]:
        return 200, {"metrics": self.store.metrics(call.project)}

    def _submit(self, call: _Call) -> tuple[int, Any]:
        self.store.check_project(api_key=call.project)
        feedback_id = self.store.submit(call.project, call.json())
        return 201, {"feedback": {"feedback_id": feedback_id}}

    # ----------------------------------------------------------------- control

    def control(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        """Answer a /_sandbox/ control request (no auth, no faults, not logged)."""
        try:
            return 200, self._control(method, path.rstrip("/"), body)
        except ApiError as err:
            return err.status, err.envelope()
        except KeyError as err:
            return 404, ApiError(404, "NOT_FOUND", f"Unknown id {err}").envelope()

    def _control(self, method: str, path: str, body: bytes) -> Any:
        args: dict[str, Any] = {}
        if method == "POST" and body.strip():
            parsed = _json_body(body)
            if not isinstance(parsed, dict):
                raise validation_error("body", "a JSON object is required")
            args = parsed
        route = (method, path)
        if route == ("GET", "/_sandbox/stats"):
            ids = self.store.project_ids()
            with self._lock:
                served, failures = len(self.requests), self.auth_failures
            return {
                "projects": {pid: self.store.count(pid) for pid in ids},
                "requests": served,
                "auth_failures": failures,
                "faults_fired": dict(self.fired),
            }
        if route == ("GET", "/_sandbox/faults"):
            return self.faults.as_dict()
        if route == ("POST", "/_sandbox/faults"):
            self.faults.update(args)
            return self.faults.as_dict()
        if route == ("POST", "/_sandbox/change"):
            ids = self.store.change_feedbacks(
                args["project_id"], int(args.get("k", 1)), args.get("rng_seed"), args.get("ids")
            )
            return {"ids": ids}
        if route == ("POST", "/_sandbox/add"):
            return {"ids": self.store.add_feedbacks(args["project_id"], int(args.get("n", 1)))}
        if route == ("POST", "/_sandbox/delete"):
            self.store.delete_feedback(args["project_id"], args["feedback_id"])
            return {"deleted": args["feedback_id"]}
        if route == ("POST", "/_sandbox/reset_requests"):
            self.reset_requests()
            return {"requests": 0}
        if route == ("GET", "/_sandbox/requests"):
            with self._lock:
                return [list(r) for r in self.requests]
        if method == "GET" and path.startswith("/_sandbox/feedbacks/"):
            return self.store.feedbacks(unquote(path[len("/_sandbox/feedbacks/") :]))
        raise ApiError(404, "NOT_FOUND", "Unknown control route", {"path": path})


def _counts(value: str) -> int | list[int]:
    """--feedbacks takes one count for every project or a comma-separated list."""
    parts = [int(p) for p in value.split(",") if p.strip()]
    return parts[0] if len(parts) == 1 and "," not in value else parts


def main(argv: list[str] | None = None) -> int:
    """CLI: serve until SIGTERM/SIGINT; print one JSON line with the URL first."""
    parser = argparse.ArgumentParser(prog="usersnap-sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--projects",
        type=int,
        default=None,
        help="number of projects (default 3, or the length of --feedbacks list)",
    )
    parser.add_argument(
        "--feedbacks", type=_counts, default=250, help="feedbacks per project: N or N1,N2,..."
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--jwt-id", default=DEFAULT_JWT_ID)
    parser.add_argument(
        "--jwt-secret",
        default=None,
        help="defaults to $USERSNAP_SANDBOX_JWT_SECRET, then a demo secret",
    )
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--max-token-lifetime", type=float, default=3600)
    args = parser.parse_args(argv)
    secret = args.jwt_secret or os.environ.get("USERSNAP_SANDBOX_JWT_SECRET") or DEFAULT_JWT_SECRET
    feedbacks = args.feedbacks
    projects = args.projects
    if projects is None:
        projects = len(feedbacks) if isinstance(feedbacks, list) else 3
    try:
        sandbox = Sandbox(
            jwt_id=args.jwt_id,
            jwt_secret=secret,
            projects=projects,
            feedbacks_per_project=feedbacks,
            seed=args.seed,
            host=args.host,
            port=args.port,
            max_token_lifetime=args.max_token_lifetime,
        )
    except ValueError as exc:
        parser.error(str(exc))
    sandbox.faults.latency_ms = args.latency_ms
    stopping = threading.Event()

    def _on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    sandbox.start()
    print(json.dumps({"url": sandbox.url, "port": sandbox.port}), flush=True)
    while not stopping.wait(0.5):
        pass
    sandbox.stop()
    return 0
