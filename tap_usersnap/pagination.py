"""Keyset pagination of the feedback lists: follow ``data.next.after`` while ``has_more``."""

from __future__ import annotations

import sys
import typing as t
from urllib.parse import urlsplit

from singer_sdk.pagination import BaseAPIPaginator

from tap_usersnap.envelope import next_cursor, payload
from tap_usersnap.errors import UsersnapError

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import requests


class PaginationLoopError(UsersnapError):
    """The API's cursors lead back to a page already read: the read would never end."""


class FeedbackCursorPaginator(BaseAPIPaginator["str | None"]):
    """``has_more`` decides: the API also sends ``next`` on the last page.

    A cursor that repeats the page just read is a malformed page (``check_page``, retried);
    one that leads back further is caught here, where the cursors of the whole read are known.
    """

    def __init__(self, start_value: str | None) -> None:
        super().__init__(start_value)
        self._followed: set[str | None] = {start_value}

    @override
    def has_more(self, response: requests.Response) -> bool:
        return payload(response).get("has_more") is True

    @override
    def get_next(self, response: requests.Response) -> str | None:
        cursor = next_cursor(payload(response))
        if cursor in self._followed:
            msg = (
                f"{response.request.method} {urlsplit(response.url).path}: the API's cursors "
                f"lead back to a page already read (after={cursor}), so the read would never "
                "end: run again later, and report it to Usersnap if it persists"
            )
            raise PaginationLoopError(msg)
        self._followed.add(cursor)
        return cursor
