"""Write the OpenAPI document the gateway serves to a file, without a running platform:
the Flask app is built (no broker or service is contacted) and its test client asked for
``/api/openapi.json``. The web console's API client is generated from that file
(``make web-api``); ``tests/unit/test_web_console.py`` fails when it is out of date.

    python -m gateway.openapi_dump web/openapi.json
"""
from __future__ import annotations

import json
import os
import sys


def document() -> dict:
    os.environ.setdefault("BERTH_ENV", "development")  # only the route table is needed
    from gateway.app import create_app
    response = create_app().test_client().get("/api/openapi.json")
    if response.status_code != 200:
        raise RuntimeError(f"/api/openapi.json answered {response.status_code}")
    return response.get_json()


def render(doc: dict) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m gateway.openapi_dump <file>", file=sys.stderr)
        return 2
    with open(argv[0], "w", encoding="utf-8") as out:
        out.write(render(document()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
