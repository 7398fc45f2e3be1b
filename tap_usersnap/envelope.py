"""The Usersnap response envelope: ``{status, data}`` on success, ``{status, msg, errortype}``."""

from __future__ import annotations

import functools
import logging
import typing as t
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import urlsplit

import msgspec

from tap_usersnap.errors import UsersnapError
from tap_usersnap.nul import ESCAPED_NUL, replace_nul

if t.TYPE_CHECKING:
    import requests

_PAYLOAD_ATTR = "_usersnap_payload"
_OBJECT = ord("{")
logger = logging.getLogger(__name__)


class MalformedResponseError(ValueError):
    """A 2xx response whose body is not the documented envelope (truncated, HTML, ...)."""


def payload(response: requests.Response, raw_records: str | None = None) -> dict[str, t.Any]:
    """Return the envelope's ``data``, parsed once per response and cached on it.

    With ``raw_records``, the first call may leave that list's objects undecoded
    (``msgspec.Raw``, read through :class:`Records`), when the page is a plain successful one.

    Raises:
        MalformedResponseError: if the body is not JSON or not a successful envelope.
    """
    cached = getattr(response, _PAYLOAD_ATTR, None)
    if cached is not None:
        return t.cast("dict[str, t.Any]", cached)
    if raw_records and (data := _with_raw_records(response.content, raw_records)) is not None:
        setattr(response, _PAYLOAD_ATTR, data)
        return data
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


@functools.cache
def _raw_page_type(records_key: str) -> type[msgspec.Struct]:
    """A successful page's envelope, its records as raw JSON; other members of no use here."""
    data = msgspec.defstruct(
        "RawPageData",
        [(records_key, list[msgspec.Raw]), ("has_more", t.Any, None), ("next", t.Any, None)],
    )
    return msgspec.defstruct("RawPage", [("status", t.Any), ("data", data)])


def _with_raw_records(content: bytes, records_key: str) -> dict[str, t.Any] | None:
    """``data`` with its records left undecoded, or None: then the page is read whole.

    Decoding a page's records is most of its parsing. A fetch worker then only checks the
    envelope and finds the next cursor, and sends the next request sooner; the records
    are decoded by whoever reads them. Anything but a plain successful page (an error, a
    record that is no object, a NUL to replace, a lone surrogate or a byte that is no UTF-8)
    is left to the whole read, which reports it as before.
    """
    if ESCAPED_NUL in content:
        return None
    if not content.isascii():
        try:
            content.decode()  # msgspec checks UTF-8 only in what it decodes: not in a Raw
        except UnicodeDecodeError:
            return None
    try:
        page: t.Any = msgspec.json.decode(content, type=_raw_page_type(records_key))
    except ValueError:  # msgspec's DecodeError and ValidationError, an int of too many digits
        return None
    records = getattr(page.data, records_key)
    if page.status is not True or not all(memoryview(raw)[0] == _OBJECT for raw in records):
        return None
    return {records_key: records, "has_more": page.data.has_more, "next": page.data.next}


class Records(Sequence[dict[str, t.Any]]):
    """A page's records, each decoded (then ``prepare``d) where it is first read.

    So the records of a page fetched ahead are decoded by the thread that consumes them,
    not by the fetch worker, whose next request waits for its parsing. One thread reads
    at a time: the worker before it queues the page, then the consumer.
    """

    def __init__(
        self,
        items: list[t.Any],
        prepare: Callable[[dict[str, t.Any]], dict[str, t.Any]] = lambda record: record,
        where: str = "a page",
    ) -> None:
        self._items = items
        self._prepare = prepare
        self._ready = [False] * len(items)
        self._where = where

    def __len__(self) -> int:
        return len(self._items)

    @t.overload
    def __getitem__(self, index: int) -> dict[str, t.Any]: ...
    @t.overload
    def __getitem__(self, index: slice) -> list[dict[str, t.Any]]: ...
    def __getitem__(self, index: int | slice) -> dict[str, t.Any] | list[dict[str, t.Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not self._ready[index]:
            self._items[index] = self._prepare(self._decode(self._items[index], index))
            self._ready[index] = True
        return t.cast("dict[str, t.Any]", self._items[index])

    def __iter__(self) -> Iterator[dict[str, t.Any]]:
        for index in range(len(self._items)):
            yield self[index]

    def _decode(self, item: t.Any, index: int) -> t.Any:
        """A raw record decoded; a decoded one (a page read whole) as it is.

        msgspec checked its JSON when the page came, but converts numbers only now: an
        integer of more digits than Python reads is refused here, too late for a retry.
        """
        if not isinstance(item, msgspec.Raw):
            return item
        try:
            return msgspec.json.decode(item)
        except ValueError as exc:
            msg = f"Record {index + 1} of {self._where} is not valid JSON ({exc}): run again"
            raise UsersnapError(msg) from exc


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
    objects = (dict, msgspec.Raw)  # a raw record (``payload``) was seen to be an object
    if not isinstance(records, list) or not all(isinstance(r, objects) for r in records):
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
