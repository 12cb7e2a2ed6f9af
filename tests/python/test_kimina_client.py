"""Drive the real kimina-client (PyPI) against a running Lean Farm.

Usage: python3 test_kimina_client.py http://127.0.0.1:PORT [API_KEY]
With API_KEY, the client sends it as its bearer token (the farm then
requires one). Exits non-zero with a message on the first expectation that fails.
"""

import sys

if sys.version_info < (3, 12):
    # kimina-client takes TypedDict from `typing` whenever `typing.NotRequired`
    # exists (Python 3.11 has it), and pydantic refuses `typing.TypedDict`
    # below 3.12. Point `typing` at the typing_extensions version before the
    # client is imported; the client's own code stays as published.
    import typing

    import typing_extensions

    typing.TypedDict = typing_extensions.TypedDict

from kimina_client import KiminaClient
from kimina_client.models import SnippetStatus, Snippet


def main() -> None:
    url = sys.argv[1]
    api_key = sys.argv[2] if len(sys.argv) > 2 else None
    client = KiminaClient(api_url=url, api_key=api_key, http_timeout=120, n_retries=1)
    health = client.health()
    assert health == {"status": "ok"}, health

    snippets = [
        Snippet(id="valid", code="import Mathlib\ntheorem t : 1 + 1 = 2 := by norm_num"),
        Snippet(id="sorry", code="theorem t : 1 = 2 := by sorry"),
        Snippet(id="error", code="theorem t : 1 = 2 := by\n  -- sim: error unsolved goals\n  rfl"),
        Snippet(id="cheat", code="axiom cheat : False\ntheorem t : 1 = 2 := cheat.elim"),
        Snippet(id="timeout", code="theorem t : True := by\n  -- sim: spin\n  trivial"),
        Snippet(id="crash", code="-- sim: crash\ntheorem t : True := trivial"),
    ]
    response = client.check(snippets, timeout=3, show_progress=False, batch_size=3)
    statuses = {result.id: result.analyze().status for result in response.results}
    expected = {
        "valid": SnippetStatus.valid,
        "sorry": SnippetStatus.sorry,
        "error": SnippetStatus.lean_error,
        "cheat": SnippetStatus.lean_error,
        "timeout": SnippetStatus.timeout_error,
        "crash": SnippetStatus.repl_error,
    }
    assert statuses == expected, statuses
    print("kimina-client: 6 snippets, statuses as expected")


if __name__ == "__main__":
    main()
