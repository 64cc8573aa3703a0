"""The AsyncAPI documents of both services, as committed under docs/asyncapi/."""

from __future__ import annotations

import json
from pathlib import Path

from services.adapters.runtime.settings import ServiceSettings
from services.domain import catalog

ASYNCAPI_DIR = Path(__file__).resolve().parents[3] / "docs" / "asyncapi"


def render_all() -> dict[str, str]:
    """Each service's document with the default settings (no connection is made)."""
    from services.adapters.runtime.serve import build

    settings = ServiceSettings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9092",
        DATABASE_URL="postgresql://postgres@127.0.0.1:5432/mandat",
    )
    out = {}
    for name in catalog.SERVICES:
        document = json.loads(build(name, settings).asyncapi())
        out[name] = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out
