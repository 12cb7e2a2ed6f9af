"""Errors of the Lean Farm client.

Every answer of the farm that is not a success becomes an `ApiError` (or
one of its subclasses, by HTTP status) carrying the farm's
``{"code", "message"}``. A farm that does not answer at all, after the
client's retries, is a `ConnectionFailed`.
"""

from typing import Dict, Optional, Type


class LeanFarmError(Exception):
    """Any failure of the client."""


class ConnectionFailed(LeanFarmError):
    """The farm did not answer (refused, reset or timed out), after retries."""


class ExportCutShort(LeanFarmError):
    """An export or event stream ended before the farm finished it."""


class ApiError(LeanFarmError):
    """The farm answered with an error: its HTTP status and ``{code, message}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400: the request is malformed (``invalid_request``, ``invalid_timeout``, ...)."""


class Unauthorized(ApiError):
    """401: no token where one is required, or an unknown, revoked or expired one."""


class Forbidden(ApiError):
    """403: a token of the wrong scope."""


class NotFound(ApiError):
    """404: no such check or batch (another tenant's is not found either)."""


class TooLarge(ApiError):
    """413: the body, a snippet, a field or the batch is over its limit."""


class Unprocessable(ApiError):
    """422: e.g. ``idempotency_key_reused`` or ``no_worker_for_target``."""


class TooManyRequests(ApiError):
    """429: the queue, the tenant's queue or its rate is full; retry later."""


class Unavailable(ApiError):
    """503: the store is down, the farm drains, or it holds too many connections."""


_BY_STATUS: Dict[int, Type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: TooLarge,
    422: Unprocessable,
    429: TooManyRequests,
    503: Unavailable,
}


def api_error(
    status: int, code: str, message: str, retry_after: Optional[float] = None
) -> ApiError:
    """The error class for this status, with the farm's code and message."""
    error_class = _BY_STATUS.get(status, ApiError)
    return error_class(status, code, message, retry_after)
