"""schemathesis hooks for bench/fuzz-api.sh.

A lease request may wait up to 30 s for work (`wait_seconds`); with no work
queued, generated leases would spend the run waiting. They are sent with at
most 0.2 s, which keeps every other field as generated (a negative value
stays negative).
"""

import schemathesis


@schemathesis.hook
def before_call(context, case, kwargs):
    body = case.body
    if isinstance(body, dict):
        wait = body.get("wait_seconds")
        if isinstance(wait, (int, float)) and not isinstance(wait, bool):
            body["wait_seconds"] = min(wait, 0.2)
