"""Keyset pagination of the feedback lists: follow ``data.next.after`` while ``has_more``."""

from __future__ import annotations

import sys
import typing as t

from singer_sdk.pagination import BaseAPIPaginator

from tap_usersnap.envelope import next_cursor, payload

if sys.version_info >= (3, 12):
    from typing import override
else:
    from typing_extensions import override

if t.TYPE_CHECKING:
    import requests


class FeedbackCursorPaginator(BaseAPIPaginator["str | None"]):
    """``has_more`` decides: the API also sends ``next`` on the last page."""

    @override
    def has_more(self, response: requests.Response) -> bool:
        return payload(response).get("has_more") is True

    @override
    def get_next(self, response: requests.Response) -> str | None:
        return next_cursor(payload(response))
