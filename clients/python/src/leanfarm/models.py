"""The shapes of Lean Farm's API (docs/api.md), as typed dataclasses.

Each model read from the farm keeps the JSON it came from in ``raw``, so a
field this version does not name is still at hand.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

JsonObject = Dict[str, Any]

#: The statuses a verdict may have.
STATUSES = ("valid", "sorry", "lean_error", "repl_error", "timeout_error", "server_error")


@dataclass(frozen=True)
class Snippet:
    """One proof attempt: Lean source, and an id of the caller's choosing."""

    code: str
    id: Optional[str] = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {"code": self.code}
        if self.id is not None:
            body["id"] = self.id
        return body


SnippetLike = Union[str, Snippet, Mapping[str, Any]]


def snippet_json(snippet: SnippetLike) -> JsonObject:
    """A snippet as the API takes it: from source text, a `Snippet`, or a mapping."""
    if isinstance(snippet, str):
        return {"code": snippet}
    if isinstance(snippet, Snippet):
        return snippet.to_json()
    return dict(snippet)


@dataclass(frozen=True)
class PinnedStatement:
    """A theorem the snippet must prove exactly, e.g.
    ``PinnedStatement("t", "theorem t (n : Nat) : n + 0 = n")``."""

    name: str
    statement: str
    preamble: Optional[str] = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {"name": self.name, "statement": self.statement}
        if self.preamble is not None:
            body["preamble"] = self.preamble
        return body


@dataclass(frozen=True)
class Policy:
    """What a valid proof must satisfy (docs/verdicts.md). A field left at
    None takes the farm's default."""

    allowed_axioms: Optional[Sequence[str]] = None
    allow_native_decide: Optional[bool] = None
    allow_metaprogramming: Optional[bool] = None
    pinned: Optional[PinnedStatement] = None

    def to_json(self) -> JsonObject:
        body: JsonObject = {}
        if self.allowed_axioms is not None:
            body["allowed_axioms"] = list(self.allowed_axioms)
        if self.allow_native_decide is not None:
            body["allow_native_decide"] = self.allow_native_decide
        if self.allow_metaprogramming is not None:
            body["allow_metaprogramming"] = self.allow_metaprogramming
        if self.pinned is not None:
            body["pinned"] = self.pinned.to_json()
        return body


@dataclass(frozen=True)
class Reason:
    """Why a verdict is not ``valid``."""

    code: str
    message: str


@dataclass(frozen=True)
class Verdict:
    """The farm's judgment of one snippet."""

    status: str
    reason: Optional[Reason]
    messages: List[JsonObject]
    axioms: Dict[str, List[str]]
    toolchain: Optional[str]
    project: Optional[str]
    raw: JsonObject = field(repr=False)

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    @staticmethod
    def from_json(value: JsonObject) -> "Verdict":
        reason = value.get("reason")
        return Verdict(
            status=str(value.get("status", "")),
            reason=(
                Reason(code=str(reason.get("code", "")), message=str(reason.get("message", "")))
                if isinstance(reason, dict)
                else None
            ),
            messages=list(value.get("messages") or []),
            axioms=dict(value.get("axioms") or {}),
            toolchain=value.get("toolchain"),
            project=value.get("project"),
            raw=value,
        )


@dataclass(frozen=True)
class Check:
    """One snippet's job, as ``GET /v1/checks/{id}`` shows it."""

    id: str
    custom_id: Optional[str]
    batch_id: str
    state: str
    attempts: int
    verdict: Optional[Verdict]
    error: Optional[str]
    raw: JsonObject = field(repr=False)

    @property
    def final(self) -> bool:
        """Whether the check will change no more (``done`` or ``dead``)."""
        return self.state in ("done", "dead")

    @property
    def valid(self) -> bool:
        return self.verdict is not None and self.verdict.valid

    @property
    def status(self) -> Optional[str]:
        """The verdict's status; ``server_error`` for a check the farm gave up on."""
        if self.verdict is not None:
            return self.verdict.status
        if self.state == "dead":
            return "server_error"
        return None

    @staticmethod
    def from_json(value: JsonObject) -> "Check":
        verdict = value.get("verdict")
        return Check(
            id=str(value.get("id", "")),
            custom_id=value.get("custom_id"),
            batch_id=str(value.get("batch_id", "")),
            state=str(value.get("state", "")),
            attempts=int(value.get("attempts") or 0),
            verdict=Verdict.from_json(verdict) if isinstance(verdict, dict) else None,
            error=value.get("error"),
            raw=value,
        )


@dataclass(frozen=True)
class Submission:
    """The answer to a submission: the batch and its checks, in snippet order."""

    batch_id: str
    checks: List[Check]

    @property
    def all_final(self) -> bool:
        return all(check.final for check in self.checks)


@dataclass(frozen=True)
class BatchProgress:
    """A batch's progress (``GET /v1/batches/{id}``)."""

    batch_id: str
    total: int
    states: Dict[str, int]
    statuses: Dict[str, int]
    finished: int
    progress: float
    all_final: bool
    raw: JsonObject = field(repr=False)

    @staticmethod
    def from_json(value: JsonObject) -> "BatchProgress":
        return BatchProgress(
            batch_id=str(value.get("batch_id", "")),
            total=int(value.get("total") or 0),
            states={str(k): int(v) for k, v in (value.get("states") or {}).items()},
            statuses={str(k): int(v) for k, v in (value.get("statuses") or {}).items()},
            finished=int(value.get("finished") or 0),
            progress=float(value.get("progress") or 0.0),
            all_final=bool(value.get("all_final")),
            raw=value,
        )


@dataclass(frozen=True)
class Cancellation:
    """What a cancellation ended: the checks' ids, and how many were queued or running."""

    job_ids: List[str]
    queued: int
    running: int

    @staticmethod
    def from_json(value: JsonObject) -> "Cancellation":
        return Cancellation(
            job_ids=[str(job_id) for job_id in value.get("job_ids") or []],
            queued=int(value.get("queued") or 0),
            running=int(value.get("running") or 0),
        )
