"""Tactic sessions (docs/sessions.md): the shapes of their answers."""

from dataclasses import dataclass, field
from typing import List, Optional

from .models import Check, JsonObject

__all__ = ["ProofState", "Session", "TacticResult", "Finished"]


@dataclass(frozen=True)
class ProofState:
    """A proof state of a session, with its goals as Lean prints them."""

    proof_state: int
    goals: List[str]
    parent: Optional[int] = None
    tactic: Optional[str] = None
    proved: bool = False

    @staticmethod
    def from_json(value: JsonObject) -> "ProofState":
        parent = value.get("parent")
        return ProofState(
            proof_state=int(value.get("proof_state") or 0),
            goals=[str(goal) for goal in value.get("goals") or []],
            parent=int(parent) if parent is not None else None,
            tactic=value.get("tactic"),
            proved=bool(value.get("proved", False)),
        )


@dataclass(frozen=True)
class Session:
    """A session: its state (``open``, ``closed``, ``lost``) and proof states."""

    id: str
    state: str
    proof_states: List[ProofState]
    reason: Optional[str]
    raw: JsonObject = field(repr=False)

    @staticmethod
    def from_json(value: JsonObject) -> "Session":
        return Session(
            id=str(value.get("id", "")),
            state=str(value.get("state", "")),
            proof_states=[ProofState.from_json(s) for s in value.get("proof_states") or []],
            reason=value.get("reason"),
            raw=value,
        )


@dataclass(frozen=True)
class TacticResult:
    """What one ``(proof_state, tactic)`` pair gave: ``status`` is ``goals``,
    ``proved``, ``error``, ``refused``, ``repl_lost``, ``state_lost`` or ``lost``."""

    status: str
    proof_state: Optional[int]
    goals: List[str]
    message: Optional[str]
    raw: JsonObject = field(repr=False)

    @property
    def proved(self) -> bool:
        return self.status == "proved"

    @staticmethod
    def from_json(value: JsonObject) -> "TacticResult":
        state = value.get("proof_state")
        return TacticResult(
            status=str(value.get("status", "")),
            proof_state=int(state) if state is not None else None,
            goals=[str(goal) for goal in value.get("goals") or []],
            message=value.get("message"),
            raw=value,
        )


@dataclass(frozen=True)
class Finished:
    """``finish``: the assembled proof and the check that judged it."""

    proof: str
    check: Check

    @staticmethod
    def from_json(value: JsonObject) -> "Finished":
        return Finished(proof=str(value.get("proof", "")), check=Check.from_json(value["check"]))
