"""The Usersnap response envelope: ``{status, data}`` on success, ``{status, msg, errortype}``."""

from __future__ import annotations

import logging
import typing as t
from urllib.parse import urlsplit

import msgspec

from tap_usersnap.nul import ESCAPED_NUL, replace_nul

if t.TYPE_CHECKING:
    import requests

_PAYLOAD_ATTR = "_usersnap_payload"
logger = logging.getLogger(__name__)


class MalformedResponseError(ValueError):
    """A 2xx response whose body is not the documented envelope (truncated, HTML, ...)."""


def payload(response: requests.Response) -> dict[str, t.Any]:
    """Return the envelope's ``data``, parsed once per response and cached on it.

    Raises:
        MalformedResponseError: if the body is not JSON or not a successful envelope.
    """
    cached = getattr(response, _PAYLOAD_ATTR, None)
    if cached is not None:
        return t.cast("dict[str, t.Any]", cached)
    try:
        body = decode_json(response)
    except ValueError as exc:
        msg = f"response body is not valid JSON ({len(response.content)} bytes)"
        raise MalformedResponseError(msg) from exc
    if ESCAPED_NUL in response.content:
        body, count = replace_nul(body)
        if count:
            logger.warning(
                "Replaced %d NUL character(s) with U+FFFD in the response of %s "
                "(PostgreSQL cannot store NUL)",
                count,
                urlsplit(response.url).path,
            )
    if not isinstance(body, dict) or body.get("status") is not True:
        msg = f"response is not a successful envelope: {describe_error(body)}"
        raise MalformedResponseError(msg)
    data = body.get("data")
    if not isinstance(data, dict):
        msg = "response envelope has no 'data' object"
        raise MalformedResponseError(msg)
    setattr(response, _PAYLOAD_ATTR, data)
    return data


def decode_json(response: requests.Response) -> t.Any:
    """The body as JSON, decoded by msgspec: a few times faster than ``response.json()``.

    msgspec refuses what Python's JSON reads (a lone UTF-16 surrogate escape, repaired when
    written): then ``response.json()`` decides.
    """
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        return response.json()


def check_page(
    data: dict[str, t.Any],
    records_key: str,
    members: dict[str, type],
    sent_after: str | None = None,
) -> None:
    """Accept ``data`` only in the documented shape of a page.

    Raises:
        MalformedResponseError: if the record list or a member is missing or of the wrong
            type, or ``has_more`` promises a page that ``next.after`` does not lead to
            (no cursor, or ``sent_after``, the cursor of this very page).
    """
    records = data.get(records_key) if records_key else []  # no key: the page is no list
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        msg = f"'data.{records_key}' is not a list of objects"
        raise MalformedResponseError(msg)
    for name, kind in members.items():
        if not isinstance(data.get(name), kind):
            msg = f"'data.{name}' is not a {kind.__name__}"
            raise MalformedResponseError(msg)
    if "has_more" in members and data["has_more"]:
        after = next_cursor(data)
        if not after:
            msg = "'data.has_more' is true, but 'data.next.after' is no cursor"
            raise MalformedResponseError(msg)
        if after == sent_after:
            msg = "'data.next.after' is the cursor this page was asked for: it would repeat"
            raise MalformedResponseError(msg)


def next_cursor(data: dict[str, t.Any]) -> str | None:
    """The ``after`` cursor of the next page, if ``data`` names one."""
    next_page = data.get("next")
    after = next_page.get("after") if isinstance(next_page, dict) else None
    return after if isinstance(after, str) and after else None


def describe_error(body: object) -> str:
    """Summarise an error envelope as ``ERRORTYPE: msg``, tolerating any body."""
    if not isinstance(body, dict):
        return "no error envelope"
    errortype = body.get("errortype") or "UNKNOWN_ERROR"
    message = body.get("msg") or "no message"
    return f"{errortype}: {message}"


def error_envelope(response: requests.Response) -> dict[str, t.Any] | None:
    """The body of an error response, if it is a JSON object (an HTML page is not)."""
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
