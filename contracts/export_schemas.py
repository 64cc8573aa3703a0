"""Generate the published JSON Schemas of contract v1 from the models.

``python -m contracts.export_schemas`` writes ``schemas/{inbound,outbound}.json``
beside this file;
``--check`` writes nothing and exits 1 when a file on disk is out of date.
Inbound schemas describe what publishers may send (validation mode: optional fields may be
omitted); outbound schemas describe what subscribers receive (serialization mode: every
field is always present).
"""

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import TypeAdapter

from contracts.envelope import INBOUND_ADAPTER, OUTBOUND_ADAPTER

SCHEMA_DIR: Final = Path(__file__).parent / "schemas"
"""Where the generated schemas live (shipped as package data)."""
_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def _render(
    adapter: TypeAdapter[Any], mode: Literal["validation", "serialization"], name: str, what: str
) -> str:
    schema = adapter.json_schema(mode=mode)
    schema.update(
        {
            "$schema": _DIALECT,
            "$id": f"urn:rsi:contracts:v1:{name}",
            "title": f"rsi {name} v1",
            "description": what,
        }
    )
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """File name -> JSON Schema text, deterministic (sorted keys, trailing newline)."""
    return {
        "inbound.json": _render(
            INBOUND_ADAPTER,
            "validation",
            "inbound",
            "Messages published by upstream systems on the inbound topics, one per event_type.",
        ),
        "outbound.json": _render(
            OUTBOUND_ADAPTER,
            "serialization",
            "outbound",
            "Decisions published on the rsi.reglements.* topics, one per event_type.",
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Write the schemas to :data:`SCHEMA_DIR` (or only check them with ``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m contracts.export_schemas")
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in render_schemas().items():
        path = SCHEMA_DIR / name
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(name)
        if not args.check:
            SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        verb = "out of date" if args.check else "written"
        print(f"{', '.join(stale)} {verb} in {SCHEMA_DIR}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
