"""The client of Lean Farm's HTTP API (docs/api.md), on the standard library.

A submission carries an ``Idempotency-Key`` (one is made when none is
given) and is retried with that same key on a connection failure and on
429, 502, 503 and 504, so a retry never queues the work twice. Reads are
retried the same way. Every other error is raised as an `ApiError` with the
farm's ``{code, message}``.
"""

import http.client
import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import (
    Any,
    Iterable,
    Iterator,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
    overload,
)

from .errors import ApiError, ConnectionFailed, ExportCutShort, LeanFarmError, api_error
from .models import (
    BatchProgress,
    Cancellation,
    Check,
    JsonObject,
    PinnedStatement,
    Policy,
    SnippetLike,
    Submission,
    snippet_json,
)
from .sessions import Finished, Session, TacticResult

__all__ = ["Client", "WaitTimedOut"]

#: Statuses worth another try: backpressure and a farm that is (re)starting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: The longest pause between two tries, whatever ``Retry-After`` says.
MAX_PAUSE_SECONDS = 60.0

#: The event stream sends a comment every 15 s; a read may wait this long.
STREAM_READ_SECONDS = 45.0

USER_AGENT = "leanfarm-python/0.1.0"


class WaitTimedOut(LeanFarmError):
    """`Client.wait` gave up before every check of the batch was final."""

    def __init__(self, progress: BatchProgress) -> None:
        super().__init__(
            f"batch {progress.batch_id}: {progress.finished} of {progress.total} checks final"
        )
        self.progress = progress


class Client:
    """A client of one farm.

    ``timeout`` is the seconds each request may take beyond the wait it
    asks for; ``max_retries`` the tries after the first for a request that
    fails in a way that passes, with pauses from ``backoff`` doubling up to
    ``max_backoff`` (or the farm's ``Retry-After``).
    """

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        timeout: float = 60.0,
        max_retries: int = 8,
        backoff: float = 0.25,
        max_backoff: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff

    # -- submitting -------------------------------------------------------

    def submit(
        self,
        snippets: Sequence[SnippetLike],
        policy: Optional[Policy] = None,
        idempotency_key: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
        wait: float = 0.0,
        toolchain: Optional[str] = None,
        project: Optional[str] = None,
    ) -> Submission:
        """``POST /v1/checks``: queue the snippets as one batch.

        ``timeout`` is the seconds each check may take (the farm's default
        when None), ``wait`` how long the farm may hold the answer for the
        verdicts. Retries reuse ``idempotency_key`` (made here when None):
        the farm answers a repeated submission with the batch it made.
        """
        body: JsonObject = {"snippets": [snippet_json(snippet) for snippet in snippets]}
        if timeout is not None:
            body["timeout"] = timeout
        if wait:
            body["wait"] = wait
        if policy is not None:
            body["policy"] = policy.to_json()
        if toolchain is not None:
            body["toolchain"] = toolchain
        if project is not None:
            body["project"] = project
        key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
        answer = self._json(
            "POST",
            ["v1", "checks"],
            body=body,
            headers={"Idempotency-Key": key},
            wait=wait,
        )
        return Submission(
            batch_id=str(answer.get("batch_id", "")),
            checks=[Check.from_json(result) for result in answer.get("results") or []],
        )

    def check(
        self,
        snippets: Sequence[SnippetLike],
        policy: Optional[Policy] = None,
        idempotency_key: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
        wait_timeout: Optional[float] = None,
        toolchain: Optional[str] = None,
        project: Optional[str] = None,
    ) -> List[Check]:
        """Submit, wait until every check is final, and return the checks
        in snippet order."""
        submission = self.submit(
            snippets,
            policy,
            idempotency_key,
            timeout=timeout,
            toolchain=toolchain,
            project=project,
        )
        if submission.all_final:
            return submission.checks
        self.wait(submission.batch_id, timeout=wait_timeout)
        by_id = {check.id: check for check in self.export(submission.batch_id)}
        return [by_id.get(check.id, check) for check in submission.checks]

    # -- following --------------------------------------------------------

    def get(self, check_id: str, wait: float = 0.0) -> Check:
        """``GET /v1/checks/{id}``, answered when the check is final or after ``wait`` s."""
        query = {"wait": _seconds(wait)} if wait else None
        return Check.from_json(self._json("GET", ["v1", "checks", check_id], query=query, wait=wait))

    def progress(self, batch_id: str, wait: float = 0.0) -> BatchProgress:
        """``GET /v1/batches/{id}``: counts by state and status."""
        query = {"wait": _seconds(wait)} if wait else None
        return BatchProgress.from_json(
            self._json("GET", ["v1", "batches", batch_id], query=query, wait=wait)
        )

    def wait(
        self, batch_id: str, timeout: Optional[float] = None, poll: float = 30.0
    ) -> BatchProgress:
        """Long-poll the batch until every check is final, however long
        that takes (or ``timeout`` seconds: then `WaitTimedOut`). A poll
        longer than the farm allows is shortened."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = poll
            if deadline is not None:
                wait = max(0.0, min(poll, deadline - time.monotonic()))
            try:
                progress = self.progress(batch_id, wait=wait)
            except ApiError as error:
                if error.code != "invalid_wait" or poll < 0.5:
                    raise
                poll = poll / 2 if poll > 1 else 0.0
                continue
            if progress.all_final:
                return progress
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimedOut(progress)
            if wait == 0:
                time.sleep(0.5)

    def stream(self, batch_id: str) -> Iterator[Check]:
        """``GET /v1/batches/{id}/events``: each check of the batch once,
        as it becomes final, until every one is. A dropped connection is
        reopened with ``Last-Event-ID`` (the farm goes on after that
        verdict); a verdict already yielded is never yielded again."""
        seen: Set[str] = set()
        last_event_id: Optional[str] = None
        drops = 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last_event_id is not None:
                headers["Last-Event-ID"] = last_event_id
            response = self._open(
                "GET",
                ["v1", "batches", batch_id, "events"],
                headers=headers,
                read_timeout=max(self.timeout, STREAM_READ_SECONDS),
            )
            try:
                for name, event_id, data in _server_sent_events(response):
                    if name == "end":
                        return
                    if name != "verdict":
                        continue
                    check = Check.from_json(json.loads(data))
                    if event_id is not None:
                        last_event_id = event_id
                    drops = 0
                    # The event id is the verdict's place; a farm that
                    # gives none sends each check once per stream.
                    place = event_id if event_id is not None else check.id
                    if place in seen:
                        continue
                    seen.add(place)
                    yield check
            except (OSError, http.client.HTTPException, ValueError):
                pass
            finally:
                response.close()
            # The stream closed before its end event: the farm restarted,
            # or the connection dropped. Reopen it.
            drops += 1
            if drops > self.max_retries:
                raise ExportCutShort(f"the event stream of batch {batch_id} kept closing early")
            time.sleep(self._pause(drops - 1, None))

    # -- results and cancellation -----------------------------------------

    @overload
    def export(
        self, batch_id: str, format: Literal["jsonl"] = ..., status: Optional[str] = ...
    ) -> Iterator[Check]: ...

    @overload
    def export(
        self, batch_id: str, format: Literal["csv"], status: Optional[str] = ...
    ) -> Iterator[str]: ...

    def export(
        self, batch_id: str, format: str = "jsonl", status: Optional[str] = None
    ) -> Union[Iterator[Check], Iterator[str]]:
        """``GET /v1/batches/{id}/results``: every check of the batch,
        oldest first, read as the farm streams it (``jsonl``: `Check`s;
        ``csv``: the lines, header first). A body cut short raises
        `ExportCutShort`, never ends early."""
        if format not in ("jsonl", "csv"):
            raise ValueError(f"format must be 'jsonl' or 'csv', not {format!r}")
        query = {"format": format}
        if status is not None:
            query["status"] = status
        response = self._open("GET", ["v1", "batches", batch_id, "results"], query=query)
        lines = _lines(response, batch_id)
        if format == "csv":
            return lines
        return (Check.from_json(json.loads(line)) for line in lines if line.strip())

    def cancel(self, batch_id: str) -> Cancellation:
        """``DELETE /v1/batches/{id}``: end every open check of the batch."""
        return Cancellation.from_json(self._json("DELETE", ["v1", "batches", batch_id]))

    def cancel_check(self, check_id: str) -> Cancellation:
        """``DELETE /v1/checks/{id}``: end one open check."""
        return Cancellation.from_json(self._json("DELETE", ["v1", "checks", check_id]))

    # -- tactic sessions (docs/sessions.md) --------------------------------

    def open_session(
        self,
        *,
        theorem: Optional[PinnedStatement] = None,
        snippet: Optional[str] = None,
        header: str = "",
        policy: Optional[Policy] = None,
        repls: int = 1,
        tactic_timeout: float = 10.0,
    ) -> Session:
        """``POST /v1/sessions``: open a theorem, or a body whose ``sorry``s
        open the proof states; the session with its root states."""
        body: JsonObject = {"header": header, "repls": repls, "tactic_timeout": tactic_timeout}
        if theorem is not None:
            body["theorem"] = theorem.to_json()
        if snippet is not None:
            body["snippet"] = snippet
        if policy is not None:
            body["policy"] = policy.to_json()
        return Session.from_json(self._json("POST", ["v1", "sessions"], body=body))

    def apply(
        self, session_id: str, pairs: Sequence[Tuple[int, str]]
    ) -> List[TacticResult]:
        """``POST /v1/sessions/{id}/tactics``: one result per pair, in order."""
        body: JsonObject = {
            "pairs": [{"proof_state": state, "tactic": tactic} for state, tactic in pairs]
        }
        answer = self._json("POST", ["v1", "sessions", session_id, "tactics"], body=body)
        return [TacticResult.from_json(result) for result in answer.get("results") or []]

    def finish(
        self, session_id: str, proof_state: int, timeout: float = 60.0, wait: float = 60.0
    ) -> Finished:
        """``POST /v1/sessions/{id}/finish``: the proof of the chain ending in
        ``proof_state``, checked through the ordinary check path."""
        body: JsonObject = {"proof_state": proof_state, "timeout": timeout, "wait": wait}
        return Finished.from_json(
            self._json("POST", ["v1", "sessions", session_id, "finish"], body=body, wait=wait)
        )

    def session(self, session_id: str) -> Session:
        """``GET /v1/sessions/{id}``."""
        return Session.from_json(self._json("GET", ["v1", "sessions", session_id]))

    def close_session(self, session_id: str) -> None:
        """``DELETE /v1/sessions/{id}``: the worker stops the session's REPLs."""
        self._json("DELETE", ["v1", "sessions", session_id])

    # -- transport --------------------------------------------------------

    def _url(self, segments: Sequence[str], query: Optional[Mapping[str, str]]) -> str:
        path = "/".join(urllib.parse.quote(segment, safe="") for segment in segments)
        url = f"{self.base_url}/{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        return url

    def _pause(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_PAUSE_SECONDS)
        pause: float = min(self.backoff * (2**attempt), self.max_backoff)
        return pause * random.uniform(0.8, 1.0)

    def _open(
        self,
        method: str,
        segments: Sequence[str],
        *,
        query: Optional[Mapping[str, str]] = None,
        body: Optional[JsonObject] = None,
        headers: Optional[Mapping[str, str]] = None,
        wait: float = 0.0,
        read_timeout: Optional[float] = None,
    ) -> http.client.HTTPResponse:
        """The farm's successful answer, its body unread; retried as the module says."""
        url = self._url(segments, query)
        data = None if body is None else json.dumps(body).encode("utf-8")
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        if self.token is not None:
            all_headers["Authorization"] = f"Bearer {self.token}"
        all_headers.update(headers or {})
        timeout = read_timeout if read_timeout is not None else self.timeout + wait
        attempt = 0
        while True:
            request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
            try:
                response: http.client.HTTPResponse = urllib.request.urlopen(
                    request, timeout=timeout
                )
                return response
            except urllib.error.HTTPError as error:
                failure = _api_error_of(error)
                if failure.status not in RETRY_STATUSES or attempt >= self.max_retries:
                    raise failure from None
                pause = self._pause(attempt, failure.retry_after)
            except (OSError, http.client.HTTPException) as error:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(
                        f"{method} {url}: no answer after {attempt + 1} tries: {error}"
                    ) from error
                pause = self._pause(attempt, None)
            attempt += 1
            time.sleep(pause)

    def _json(
        self,
        method: str,
        segments: Sequence[str],
        *,
        query: Optional[Mapping[str, str]] = None,
        body: Optional[JsonObject] = None,
        headers: Optional[Mapping[str, str]] = None,
        wait: float = 0.0,
    ) -> JsonObject:
        """The farm's JSON answer. An answer lost while it was read is
        asked for again (the same request: a submission keeps its key)."""
        attempt = 0
        while True:
            response = self._open(
                method, segments, query=query, body=body, headers=headers, wait=wait
            )
            try:
                with response:
                    text = response.read()
                value = json.loads(text)
            except (OSError, http.client.HTTPException) as error:
                if attempt >= self.max_retries:
                    raise ConnectionFailed(f"the answer was cut short: {error}") from error
                time.sleep(self._pause(attempt, None))
                attempt += 1
                continue
            except ValueError as error:
                raise LeanFarmError(f"the farm's answer is not JSON: {error}") from error
            if not isinstance(value, dict):
                raise LeanFarmError("the farm's answer is not a JSON object")
            return value


def _seconds(value: float) -> str:
    return repr(float(value))


def _api_error_of(error: urllib.error.HTTPError) -> ApiError:
    """The farm's ``{code, message}`` (and ``Retry-After``) of an error answer."""
    try:
        text = error.read().decode("utf-8", errors="replace")
    except (OSError, http.client.HTTPException):
        text = ""
    finally:
        error.close()
    code, message = "http_error", text[:200] or str(error.reason)
    try:
        value: Any = json.loads(text)
        if isinstance(value, dict):
            code = str(value.get("code", code))
            message = str(value.get("message", message))
    except ValueError:
        pass
    retry_after: Optional[float] = None
    header = error.headers.get("Retry-After") if error.headers is not None else None
    if header is not None:
        try:
            retry_after = float(header)
        except ValueError:
            retry_after = None
    return api_error(error.code, code, message, retry_after)


def _lines(response: http.client.HTTPResponse, batch_id: str) -> Iterator[str]:
    """The lines of a streamed body; a body cut short raises `ExportCutShort`."""
    try:
        with response:
            for raw in response:
                yield raw.decode("utf-8").rstrip("\r\n")
    except (OSError, http.client.HTTPException) as error:
        raise ExportCutShort(f"the export of batch {batch_id} was cut short: {error}") from error


def _server_sent_events(
    lines: Iterable[bytes],
) -> Iterator[Tuple[str, Optional[str], str]]:
    """(event name, id, data) of each event of a ``text/event-stream`` body."""
    name: str = "message"
    event_id: Optional[str] = None
    data: List[str] = []
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                yield name, event_id, "\n".join(data)
            name, event_id, data = "message", None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            name = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
