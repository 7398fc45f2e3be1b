"""The API's error envelope."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An API error the server renders as the Usersnap error envelope."""

    def __init__(
        self, status: int, errortype: str, msg: str, errordata: dict[str, Any] | None = None
    ) -> None:
        super().__init__(msg)
        self.status = status
        self.errortype = errortype
        self.msg = msg
        self.errordata = errordata if errordata is not None else {}

    def envelope(self) -> dict[str, Any]:
        """Return the JSON body the API sends for this error."""
        return {
            "status": False,
            "msg": self.msg,
            "errortype": self.errortype,
            "errordata": self.errordata,
        }


def validation_error(field: str, msg: str) -> ApiError:
    """Build the 400 VALIDATION_ERROR the API returns for a bad parameter."""
    return ApiError(400, "VALIDATION_ERROR", f"Invalid value for {field}: {msg}", {"field": field})
