"""schemathesis hooks for bench/fuzz-api.sh.

A lease request may wait up to 30 s for work (`wait_seconds`); with no work
queued, generated leases would spend the run waiting. They are sent with at
most 0.2 s, which keeps every other field as generated (a negative value
stays negative). Likewise a long poll's `wait` query parameter
(`GET /v1/checks/{id}?wait=`, `GET /v1/batches/{id}?wait=`, up to 300 s)
is cut to 0.2 s, so that a poll on a check that never finishes does not
outlast the client's read timeout.
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, dict):
        wait = body.get("wait_seconds")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool):
            body["wait_seconds"] = min(wait, 0.2)
    query = case.query
    if isinstance(query, dict):
        wait = query.get("wait")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool):
            query["wait"] = min(wait, 0.2)
