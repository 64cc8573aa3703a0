"""The JSON Schemas on disk are the ones generated from the models."""

import json
from pathlib import Path

import pytest

from contracts.export_schemas import SCHEMA_DIR, main, render_schemas

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", sorted(render_schemas()))
def test_the_schema_on_disk_is_up_to_date(name: str) -> None:
    on_disk = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert on_disk == render_schemas()[name], (
        f"{name} is out of date: run `python -m contracts.export_schemas`"
    )


def test_rendering_is_deterministic_and_ends_with_a_newline() -> None:
    first, second = render_schemas(), render_schemas()
    assert first == second
    assert all(text.endswith("}\n") for text in first.values())


def test_the_schemas_discriminate_on_event_type_and_require_it() -> None:
    for name in ("inbound.json", "outbound.json"):
        schema = json.loads(render_schemas()[name])
        assert schema["discriminator"]["propertyName"] == "event_type"
        for ref in schema["oneOf"]:
            envelope = schema["$defs"][ref["$ref"].rsplit("/", 1)[1]]
            assert {"event_id", "event_type", "schema_version", "payload"} <= set(
                envelope["required"]
            )


def test_the_check_mode_fails_on_a_stale_file_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("contracts.export_schemas.SCHEMA_DIR", tmp_path)
    assert main(["--check"]) == 1
    assert list(tmp_path.iterdir()) == []
    assert main([]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(render_schemas())
    assert main(["--check"]) == 0
