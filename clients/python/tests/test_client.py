"""The client against a real farm (``leanfarm serve --simulate``): submit,
wait, stream, export, cancel, errors and retries."""

import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, List

import pytest

from conftest import Farm, free_port
from leanfarm import (
    BadRequest,
    Check,
    Client,
    ConnectionFailed,
    NotFound,
    PinnedStatement,
    Policy,
    Snippet,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
)

VALID = "theorem t : True := trivial"
SORRY = "theorem t : 1 = 1 := by sorry"


def slow(milliseconds: int) -> str:
    return f"theorem t : True := by\n  -- sim: sleep {milliseconds}\n  trivial"


def test_submit_then_wait_then_export_in_snippet_order(farm: Farm) -> None:
    client = Client(farm.url)
    submission = client.submit(
        [Snippet(VALID, id="a"), SORRY, {"id": "c", "code": slow(800)}], timeout=30
    )
    assert submission.batch_id
    assert [check.custom_id for check in submission.checks] == ["a", None, "c"]
    progress = client.wait(submission.batch_id)
    assert progress.all_final and progress.total == 3 and progress.finished == 3
    assert progress.statuses == {"valid": 2, "sorry": 1}
    exported = list(client.export(submission.batch_id))
    assert sorted(check.id for check in exported) == sorted(c.id for c in submission.checks)
    by_id = {check.id: check for check in exported}
    statuses = [by_id[check.id].status for check in submission.checks]
    assert statuses == ["valid", "sorry", "valid"]
    sorry = by_id[submission.checks[1].id]
    assert sorry.verdict is not None and sorry.verdict.reason is not None
    assert sorry.verdict.reason.code
    assert client.get(submission.checks[0].id).valid


def test_check_applies_the_policy(farm: Farm) -> None:
    client = Client(farm.url)
    code = "theorem t (n : Nat) : n + 0 = n := by simp"
    pinned = PinnedStatement("t", "theorem t (n : Nat) : n + 0 = n := by sorry")
    other = PinnedStatement("t", "theorem t (n : Nat) : 0 + n = n")
    assert client.check([code], policy=Policy(pinned=pinned))[0].valid
    mismatch = client.check([code], policy=Policy(pinned=other))[0]
    assert mismatch.status == "lean_error"
    assert mismatch.verdict is not None and mismatch.verdict.reason is not None
    assert mismatch.verdict.reason.code == "statement_mismatch"
    custom = VALID + "\n-- sim: axioms t Custom.ax"
    assert client.check([custom])[0].status == "lean_error"
    allowed = client.check([custom], policy=Policy(allowed_axioms=["Custom.ax"]))
    assert allowed[0].valid


def test_wait_outlasts_the_longest_wait_the_farm_allows(start_farm: Callable[..., Farm]) -> None:
    farm = start_farm("--max-wait-seconds", "1")
    client = Client(farm.url)
    checks = client.check([slow(2500), VALID])
    assert [check.status for check in checks] == ["valid", "valid"]


def test_stream_sends_each_check_once_as_it_finishes(farm: Farm) -> None:
    client = Client(farm.url)
    submission = client.submit([VALID, slow(600), SORRY, slow(1200)])
    streamed: List[Check] = list(client.stream(submission.batch_id))
    assert sorted(c.id for c in streamed) == sorted(c.id for c in submission.checks)
    assert all(check.final for check in streamed)
    # The slowest finished last.
    assert streamed[-1].id == submission.checks[3].id


def test_stream_resumes_after_the_farm_restarts(
    start_farm: Callable[..., Farm], tmp_path: Path
) -> None:
    data_dir = tmp_path / "restarted"
    first = start_farm("--slots", "1", data_dir=data_dir)
    client = Client(first.url, max_retries=12)
    submission = client.submit([VALID, slow(1500), slow(1500), slow(1500)])
    streamed: List[Check] = []
    for check in client.stream(submission.batch_id):
        streamed.append(check)
        if len(streamed) == 1:
            # The farm drains and stops mid-stream; another takes its port
            # and store, and the stream carries on there.
            first.stop()
            start_farm("--slots", "1", port=first.port, data_dir=data_dir)
    ids = [check.id for check in streamed]
    assert len(ids) == len(set(ids)) == 4
    assert sorted(ids) == sorted(c.id for c in submission.checks)
    assert all(check.status == "valid" for check in streamed)


def test_export_as_csv_and_by_status(farm: Farm) -> None:
    client = Client(farm.url)
    checks = client.check([VALID, SORRY, VALID])
    batch_id = checks[0].batch_id
    lines = list(client.export(batch_id, format="csv"))
    assert lines[0].startswith("id,custom_id,state,status,reason_code")
    assert len([line for line in lines[1:] if line]) == 3
    valid_only = list(client.export(batch_id, status="valid"))
    assert len(valid_only) == 2 and all(check.valid for check in valid_only)
    with pytest.raises(ValueError):
        client.export(batch_id, format="xml")  # type: ignore[call-overload]


def test_cancel_ends_open_checks_and_leaves_final_ones(
    start_farm: Callable[..., Farm],
) -> None:
    farm = start_farm("--slots", "1")
    client = Client(farm.url)
    done = client.check([VALID])[0]
    submission = client.submit([slow(20000), slow(20000), slow(20000)])
    cancellation = client.cancel(submission.batch_id)
    assert sorted(cancellation.job_ids) == sorted(c.id for c in submission.checks)
    assert cancellation.queued + cancellation.running == 3
    progress = client.wait(submission.batch_id, timeout=30)
    assert progress.statuses == {"server_error": 3}
    cancelled = client.get(submission.checks[0].id)
    assert cancelled.verdict is not None and cancelled.verdict.reason is not None
    assert cancelled.verdict.reason.code == "cancelled"
    assert client.cancel_check(done.id).job_ids == []
    with pytest.raises(NotFound) as not_found:
        client.cancel("no-such-batch")
    assert not_found.value.code == "not_found"


def test_errors_carry_the_farms_code_and_message(
    farm: Farm, start_farm: Callable[..., Farm]
) -> None:
    client = Client(farm.url)
    with pytest.raises(BadRequest) as empty:
        client.submit([])
    assert empty.value.status == 400 and empty.value.code == "empty_batch"
    assert empty.value.message
    with pytest.raises(BadRequest) as timeout:
        client.submit([VALID], timeout=-1)
    assert timeout.value.code == "invalid_timeout"
    with pytest.raises(NotFound) as missing:
        client.get("no-such-check")
    assert missing.value.code == "not_found"
    guarded = start_farm("--require-auth")
    with pytest.raises(Unauthorized) as unauthorized:
        Client(guarded.url).submit([VALID])
    assert unauthorized.value.code == "unauthorized"
    with pytest.raises(Unauthorized):
        Client(guarded.url, token="not-a-token").progress("any")
    nobody = Client(f"http://127.0.0.1:{free_port()}", max_retries=1, backoff=0.01)
    with pytest.raises(ConnectionFailed):
        nobody.submit([VALID])


def test_a_submission_is_retried_until_the_farm_listens(
    start_farm: Callable[..., Farm], tmp_path: Path
) -> None:
    port = free_port()
    starter = threading.Timer(1.0, lambda: start_farm(port=port))
    starter.start()
    try:
        checks = Client(f"http://127.0.0.1:{port}", max_retries=20).check([VALID])
    finally:
        starter.join()
    assert checks[0].valid


def test_a_full_queue_is_waited_out_with_the_same_key(
    start_farm: Callable[..., Farm],
) -> None:
    # No slots: nothing runs, and the queue takes one job.
    farm = start_farm("--slots", "0", "--max-queued-jobs", "1")
    client = Client(farm.url)
    first = client.submit([VALID])
    with pytest.raises(TooManyRequests) as full:
        Client(farm.url, max_retries=0).submit([VALID])
    assert full.value.code == "queue_full" and full.value.retry_after is not None
    # Once the first is cancelled the queue has room: the retried
    # submission passes, and queues its snippet once.
    threading.Timer(1.5, lambda: client.cancel(first.batch_id)).start()
    second = client.submit([SORRY])
    listed = farm.get("/v1/checks?limit=1000")["results"]
    assert sorted(check["batch_id"] for check in listed) == sorted(
        [first.batch_id, second.batch_id]
    )


def test_the_same_idempotency_key_gives_the_same_batch(farm: Farm) -> None:
    client = Client(farm.url)
    key = str(uuid.uuid4())
    first = client.submit([VALID, SORRY], idempotency_key=key)
    again = client.submit([VALID, SORRY], idempotency_key=key)
    assert again.batch_id == first.batch_id
    assert [c.id for c in again.checks] == [c.id for c in first.checks]
    with pytest.raises(Unprocessable) as reused:
        client.submit([VALID], idempotency_key=key)
    assert reused.value.code == "idempotency_key_reused"


def test_a_retry_after_a_lost_answer_does_not_queue_the_work_twice(farm: Farm) -> None:
    # A proxy that passes the first request to the farm and drops its
    # answer: the client tries again, with the same key.
    proxy = AnswerDroppingProxy(farm.port)
    client = Client(f"http://127.0.0.1:{proxy.port}", max_retries=3, backoff=0.05)
    submission = client.submit([VALID, slow(100)])
    assert proxy.requests >= 2
    client.wait(submission.batch_id)
    listed = farm.get("/v1/checks?limit=1000")["results"]
    assert len(listed) == 2, listed
    assert {check["batch_id"] for check in listed} == {submission.batch_id}


class AnswerDroppingProxy:
    """Forwards each connection's bytes to the farm; for the first one,
    closes the client's side once the farm has answered, unanswered."""

    def __init__(self, farm_port: int) -> None:
        self.farm_port = farm_port
        self.requests = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            connection, _ = self.listener.accept()
            self.requests += 1
            drop = self.requests == 1
            threading.Thread(target=self._relay, args=(connection, drop), daemon=True).start()

    def _relay(self, client: socket.socket, drop: bool) -> None:
        with client, socket.create_connection(("127.0.0.1", self.farm_port)) as upstream:
            request = _read_request(client)
            upstream.sendall(request)
            answer = b""
            while True:
                chunk = upstream.recv(65536)
                if not chunk:
                    break
                answer += chunk
            if drop:
                time.sleep(0.1)
                return
            client.sendall(answer)


def _read_request(connection: socket.socket) -> bytes:
    """One HTTP request with a Content-Length body, asking the farm to close after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    lines = head.split(b"\r\n")
    kept = []
    for line in lines:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"connection":
            continue
        kept.append(line)
    while len(body) < length:
        chunk = connection.recv(65536)
        if not chunk:
            break
        body += chunk
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n" + body


def test_a_session_branches_fails_a_tactic_and_finishes_through_a_check(farm: Farm) -> None:
    client = Client(farm.url)
    session = client.open_session(
        header="import Mathlib",
        theorem=PinnedStatement(name="t", statement="theorem t (n : Nat) : n + 0 = n"),
    )
    assert session.state == "open"
    root = session.proof_states[0].proof_state
    split, failed = client.apply(
        session.id, [(root, "induction n"), (root, "simp\n-- sim: fail simp made no progress")]
    )
    assert split.status == "goals" and len(split.goals) == 2
    assert failed.status == "error" and "simp made no progress" in (failed.message or "")
    assert split.proof_state is not None
    (one_left,) = client.apply(session.id, [(split.proof_state, "omega")])
    assert one_left.status == "goals" and one_left.proof_state is not None
    (done,) = client.apply(session.id, [(one_left.proof_state, "omega")])
    assert done.proved and done.proof_state is not None
    finished = client.finish(session.id, done.proof_state)
    assert finished.proof.endswith("  induction n\n  omega\n  omega")
    assert finished.check.valid
    listed = client.session(session.id)
    assert [state.tactic for state in listed.proof_states] == [None, "induction n", "omega", "omega"]
    client.close_session(session.id)
    assert client.session(session.id).state == "closed"
    with pytest.raises(NotFound) as missing:
        client.session("no-such-session")
    assert missing.value.code == "session_not_found"


def test_a_cheating_tactic_is_refused(farm: Farm) -> None:
    client = Client(farm.url)
    session = client.open_session(
        theorem=PinnedStatement(name="t", statement="theorem t : 1 + 1 = 2")
    )
    (refused,) = client.apply(session.id, [(session.proof_states[0].proof_state, "native_decide")])
    assert refused.status == "refused"
    assert refused.raw["code"] == "forbidden_command"
