"""A typed client for Lean Farm's HTTP API, on the Python standard library.

    from leanfarm import Client, Policy
    farm = Client("http://127.0.0.1:8000")
    checks = farm.check(["theorem t : 1 + 1 = 2 := by decide"])
    print(checks[0].status)
"""

from .client import Client, WaitTimedOut
from .errors import (
    ApiError,
    BadRequest,
    ConnectionFailed,
    ExportCutShort,
    Forbidden,
    LeanFarmError,
    NotFound,
    TooLarge,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
from .models import (
    STATUSES,
    BatchProgress,
    Cancellation,
    Check,
    PinnedStatement,
    Policy,
    Reason,
    Snippet,
    Submission,
    Verdict,
)

from .sessions import Finished, ProofState, Session, TacticResult

__version__ = "0.1.0"

__all__ = [
    "TacticResult",
    "Session",
    "ProofState",
    "Finished",
    "STATUSES",
    "ApiError",
    "BadRequest",
    "BatchProgress",
    "Cancellation",
    "Check",
    "Client",
    "ConnectionFailed",
    "ExportCutShort",
    "Forbidden",
    "LeanFarmError",
    "NotFound",
    "PinnedStatement",
    "Policy",
    "Reason",
    "Snippet",
    "Submission",
    "TooLarge",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "Verdict",
    "WaitTimedOut",
]
