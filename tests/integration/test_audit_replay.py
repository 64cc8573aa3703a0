"""`mandat replay verify` and `mandat replay what-if` on stores filled through the services'
real write path (BatchHandler), against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import date

import asyncpg
import pytest

import services.domain.collection.rules as collection_rules
from services.adapters.eventstore import EventStore
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.replay import replay
from services.tools.audit.sample import (
    ASSUREUR,
    MUTUELLE,
    NIR_A,
    Sample,
    due,
    payment,
    record_sample,
)
from services.tools.audit.sample import unpaid as unpaid_notice
from services.tools.cli import main

pytestmark = pytest.mark.integration

URSSAF_MID_2017 = replace(
    collection_rules.RULES_2017, version="al1-2017.2", debut_recouvrement_urssaf=date(2017, 7, 1)
)


@dataclass
class Stores:
    collection: EventStore
    benefits: EventStore
    feeder: Feeder  # the collection service's write path
    sample: Sample
    argv: list[str]  # where the CLI finds them

    async def position_of(self, event_type: str, **payload: str) -> int:
        events = await self.collection.read_all(0, 10_000)
        [found] = [
            e.position
            for e in events
            if e.event_type == event_type and all(e.payload.get(k) == v for k, v in payload.items())
        ]
        return found


@pytest.fixture
async def stores(settings: ServiceSettings, database_url: str) -> AsyncIterator[Stores]:
    collection = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    try:
        feeder = Feeder(collection, COLLECTION, settings)
        sample = await record_sample(feeder, Feeder(benefits, BENEFITS, settings))
        yield Stores(
            collection,
            benefits,
            feeder,
            sample,
            [
                "--database-url",
                database_url,
                "--collection-schema",
                settings.collection_schema,
                "--benefits-schema",
                settings.benefits_schema,
            ],
        )
    finally:
        await collection.pool.close()
        await benefits.pool.close()


async def mandat(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """The `mandat` entry point (in a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def tamper(database_url: str, schema: str, position: int, assignment: str) -> None:
    """What a superuser can do: switch the append-only triggers off, rewrite, switch back."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
            await conn.execute(f"UPDATE events SET {assignment} WHERE position = $1", position)
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()


async def test_a_faithful_record_replays_decision_for_decision(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await mandat(capsys, "replay", "verify", *stores.argv, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    by_service = {s["service"]: s for s in report["services"]}
    for name, store in (("collection", stores.collection), ("benefits", stores.benefits)):
        events = await store.read_all(0, 10_000)
        decisions = [e for e in events if "service" in e.metadata]
        assert by_service[name]["events_read"] == len(events)
        assert (
            by_service[name]["matched"]
            == by_service[name]["decisions_checked"]
            == len(decisions)
            > 0
        )
    assert by_service["collection"]["rejections"] == 1
    code, out = await mandat(capsys, "replay", "verify", *stores.argv)
    assert code == 0 and "replay verify: OK" in out and "0 mismatches" in out


async def test_an_altered_decision_is_caught_at_its_position_with_a_diff(
    stores: Stores, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    position = await stores.position_of(
        "EncaissementDelegue", cotisation_id=stores.sample.delegated
    )
    await tamper(
        database_url,
        stores.collection.schema,
        position,
        f"payload = jsonb_set(payload, '{{organisme_id}}', '\"{ASSUREUR}\"')",
    )

    code, out = await mandat(capsys, "replay", "verify", *stores.argv, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    collection, benefits = report["services"]
    assert benefits["ok"]
    [mismatch] = collection["mismatches"]
    assert (mismatch["kind"], mismatch["position"], mismatch["event_type"]) == (
        "altered",
        position,
        "EncaissementDelegue",
    )
    assert mismatch["diff"] == [
        {"path": "payload.organisme_id", "recorded": ASSUREUR, "replayed": MUTUELLE}
    ]
    code, out = await mandat(capsys, "replay", "verify", *stores.argv, "--service", "collection")
    assert code == 1 and f"#{position} EncaissementDelegue" in out
    assert f'payload.organisme_id: recorded "{ASSUREUR}" != replayed "{MUTUELLE}"' in out

    code, out = await mandat(capsys, "audit", "chain", *stores.argv, "--json")
    chain = {s["service"]: s for s in json.loads(out)["services"]}
    assert code == 1
    assert chain["collection"]["first_broken"] == position
    assert chain["collection"]["checked"] == position - 1
    assert chain["benefits"]["ok"]


async def test_a_registry_fact_recorded_after_a_decision_revises_it_and_replay_agrees(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    # retroactively: NIR_A moves to an organism without a convention, and the convention
    # her 2017 contribution was delegated under is terminated before it began
    stores.feeder.message(
        "AffiliationEnregistree",
        {"nir": NIR_A, "organisme_id": ASSUREUR, "mode": "OFFICE", "effet_du": "2016-01-01"},
    )
    stores.feeder.message(
        "ConventionResiliee", {"convention_id": "CNV-ENC-01", "effet_au": "2016-12-31"}
    )
    stores.feeder.message(*due("COT-A-2017-BIS", NIR_A, 2017, 1000))
    await stores.feeder.flush()
    events = await stores.collection.read_all(0, 10_000)
    decisions = ("EncaissementDelegue", "EncaissementNonDelegue")
    decided = {e.payload["cotisation_id"]: e for e in events if e.event_type in decisions}
    first = decided[stores.sample.delegated]
    assert first.event_type == "EncaissementDelegue"  # on record as it was taken
    [revision] = [
        e
        for e in events
        if e.event_type == "EncaissementRevise"
        and e.payload["cotisation_id"] == stores.sample.delegated
    ]
    assert revision.payload["decision_revisee_id"] == str(first.event_id)
    assert revision.payload["apres"]["motif"] == "AUCUNE_CONVENTION"
    assert decided["COT-A-2017-BIS"].payload["motif"] == "AUCUNE_CONVENTION"  # they count now

    code, out = await mandat(capsys, "replay", "verify", *stores.argv, "--json")
    assert code == 0, out
    assert json.loads(out)["ok"]


async def test_filters_choose_the_decisions_checked(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await mandat(
        capsys,
        "replay",
        "verify",
        *stores.argv,
        "--service",
        "collection",
        "--subject",
        stores.sample.parked,
        "--json",
    )
    [summary] = json.loads(out)["services"]
    # parked twice (the contribution, then its payment), then both decided
    assert code == 0 and summary["decisions_checked"] == 4
    first = await stores.position_of("PaiementRecu", paiement_id="PAY-A-1")
    code, out = await mandat(
        capsys,
        "replay",
        "verify",
        *stores.argv,
        "--service",
        "collection",
        "--from-position",
        str(first),
        "--to-position",
        str(first + 3),
        "--json",
    )
    [summary] = json.loads(out)["services"]
    assert code == 0 and summary["decisions_checked"] == 2
    assert summary["last_position"] == first + 3  # replay stops after the range
    code, out = await mandat(
        capsys, "replay", "verify", *stores.argv, "--since", "2999-01-01", "--json"
    )
    assert code == 0
    assert [s["decisions_checked"] for s in json.loads(out)["services"]] == [0, 0]


async def test_what_if_lists_exactly_the_decisions_a_corrected_rule_set_changes(
    stores: Stores, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    july = due("COT-L-2017", NIR_A, 2017, 100000)[1] | {
        "periode": {"debut": "2017-07-01", "fin": "2017-12-31"}
    }
    stores.feeder.message("CotisationDue", july)
    stores.feeder.message(*payment("PAY-L-1", "COT-L-2017", NIR_A, 40000))
    stores.feeder.message(*unpaid_notice("COT-L-2017", NIR_A, 60000))
    await stores.feeder.flush()
    events = await stores.collection.read_all(0, 10_000)
    changed = [
        e.position
        for e in events
        if "service" in e.metadata and e.payload.get("cotisation_id") == "COT-L-2017"
    ]
    head = await stores.collection.head()

    summary = await replay(stores.collection, COLLECTION, mode="what-if", rules=URSSAF_MID_2017)
    assert [m.position for m in summary.mismatches] == changed
    assert [(m.event_type, m.replayed_type) for m in summary.mismatches] == [
        ("EncaissementDelegue", "EncaissementNonDelegue"),
        ("PaiementEncaissePourCompte", "PaiementNonImpute"),
        ("ContentieuxDelegue", "ContentieuxSansObjet"),
    ]

    monkeypatch.setattr(collection_rules, "RULES_CANDIDATE", URSSAF_MID_2017, raising=False)
    code, out = await mandat(
        capsys,
        "replay",
        "what-if",
        *stores.argv,
        "--service",
        "collection",
        "--rules",
        "services.domain.collection.rules:RULES_CANDIDATE",
        "--json",
    )
    report = json.loads(out)
    assert code == 1 and report["changed"] == 3
    assert [m["position"] for m in report["services"][0]["mismatches"]] == changed
    assert report["services"][0]["rules_version"] == "al1-2017.2"
    code, out = await mandat(capsys, "replay", "what-if", *stores.argv)
    assert code == 0 and "no decision would change" in out  # the rules in force
    assert await stores.collection.head() == head  # nothing was written
