"""`mandat audit chain` and `mandat audit trail` on stores filled through the services'
real write path, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from support import affiliation, convention, cotisation, nir, organisme

from services.adapters.eventstore import EventStore
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS, COLLECTION
from services.tools.audit.feed import Feeder, prepare_store
from services.tools.audit.sample import NIR_A, NIR_B, Sample, record_sample
from services.tools.cli import main

pytestmark = pytest.mark.integration


@dataclass
class Stores:
    collection: EventStore
    benefits: EventStore
    sample: Sample
    argv: list[str]


@pytest.fixture
async def stores(settings: ServiceSettings, database_url: str) -> AsyncIterator[Stores]:
    collection = await prepare_store(database_url, settings.collection_schema)
    benefits = await prepare_store(database_url, settings.benefits_schema)
    try:
        sample = await record_sample(
            Feeder(collection, COLLECTION, settings), Feeder(benefits, BENEFITS, settings)
        )
        yield Stores(
            collection,
            benefits,
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
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


async def test_an_untouched_chain_holds_over_every_row(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await mandat(capsys, "audit", "chain", *stores.argv, "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"]
    assert [s["checked"] for s in report["services"]] == [
        await stores.collection.head(),
        await stores.benefits.head(),
    ]
    code, out = await mandat(capsys, "audit", "chain", *stores.argv)
    assert code == 0 and "audit chain: OK" in out


async def test_a_tampered_row_is_caught_at_its_exact_position(
    stores: Stores, capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    """Back-dating a payment: a clock field replay does not compare, the chain does."""
    [row] = [
        e
        for e in await stores.collection.read_all(0, 1000)
        if e.payload.get("paiement_id") == "PAY-A-2" and e.event_type == "PaiementRecu"
    ]
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute(f'SET LOCAL search_path TO "{stores.collection.schema}"')
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # append-only...
                async with conn.transaction():
                    await conn.execute(
                        "UPDATE events SET recorded_at = recorded_at"
                        " - interval '1 day' WHERE position = $1",
                        row.position,
                    )
            await conn.execute("ALTER TABLE events DISABLE TRIGGER USER")  # ...unless forced
            await conn.execute(
                "UPDATE events SET recorded_at = recorded_at - interval '1 day'"
                " WHERE position = $1",
                row.position,
            )
            await conn.execute("ALTER TABLE events ENABLE TRIGGER USER")
    finally:
        await conn.close()

    code, out = await mandat(
        capsys, "audit", "chain", *stores.argv, "--service", "collection", "--json"
    )
    [report] = json.loads(out)["services"]
    assert code == 1
    assert report["first_broken"] == row.position and report["checked"] == row.position - 1
    assert report["detail"]["event_type"] == "PaiementRecu"
    assert report["detail"]["stored_hash"] != report["detail"]["recomputed_hash"]
    code, out = await mandat(capsys, "audit", "chain", *stores.argv, "--service", "collection")
    assert code == 1 and f"BROKEN at position {row.position}" in out
    code, _ = await mandat(capsys, "replay", "verify", *stores.argv, "--service", "collection")
    assert code == 0  # the rules' content is intact: only the chain sees this one


async def test_the_trail_of_a_contribution_with_payments_and_a_contentieux(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    cotisation = stores.sample.delegated
    code, out = await mandat(capsys, "audit", "trail", cotisation, *stores.argv, "--json")
    report = json.loads(out)
    assert code == 0
    [trail] = report["services"]  # a contribution is the collection service's only
    entries = trail["entries"]
    assert [(e["role"], e["event_type"]) for e in entries] == [
        ("registry fact", "OrganismeDeclare"),
        ("registry fact", "ConventionConclue"),
        ("registry fact", "AffiliationEnregistree"),
        ("input", "CotisationDue"),
        ("decision", "EncaissementDelegue"),
        ("input", "PaiementRecu"),
        ("decision", "PaiementEncaissePourCompte"),
        ("input", "PaiementRecu"),
        ("decision", "PaiementEncaissePourCompte"),
        ("input", "CotisationImpayee"),
        ("decision", "ContentieuxDelegue"),
    ]
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)
    facts = positions[:3]
    assert entries[2]["payload"]["nir"] == NIR_A
    for cause, decision in zip(entries[3::2], entries[4::2], strict=True):
        assert decision["cause_position"] == cause["position"]
        assert decision["metadata"]["causation_id"] == cause["event_id"]
        assert decision["relies_on_positions"] == facts
        assert decision["regles_version"] == "al1-2017.1"
        assert decision["base_legale"] == ["CSS L611-20 al.1 (v. 2017-01-01)"]
        assert decision["faits_retenus"]["convention"]["convention_id"] == "CNV-ENC-01"
    assert [e["payload"].get("solde_restant_cents") for e in entries[6:9:2]] == [145000, 120000]
    assert entries[-1]["payload"]["restant_du_cents"] == 120000

    code, out = await mandat(capsys, "audit", "trail", cotisation, *stores.argv)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"collection: 11 recorded events about {cotisation}"
    assert "base légale: CSS L611-20 al.1 (v. 2017-01-01) · règles al1-2017.1" in out
    assert f"({', '.join(f'#{p}' for p in facts)})" in out
    shown = [line.split()[0] for line in lines if line.startswith("  #")]
    assert shown == [f"#{p}" for p in positions]


async def test_a_parked_input_s_trail_says_what_later_fact_decided_it(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await mandat(
        capsys,
        "audit",
        "trail",
        stores.sample.parked_payment,
        *stores.argv,
        "--service",
        "collection",
        "--json",
    )
    assert code == 0
    [trail] = json.loads(out)["services"]
    decisions = [e for e in trail["entries"] if e["role"] == "decision"]
    assert [(d["event_type"], d["motif"]) for d in decisions] == [
        ("DecisionEnAttente", "AFFILIATION_INCONNUE"),
        ("PaiementEncaissePourCompte", None),
    ]
    affiliation = next(e for e in trail["entries"] if e["event_type"] == "AffiliationEnregistree")
    assert affiliation["payload"]["nir"] == NIR_B
    assert decisions[1]["decided_on_position"] == affiliation["position"]


async def test_a_nir_s_trail_spans_both_services_and_an_unknown_subject_has_none(
    stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = await mandat(capsys, "audit", "trail", NIR_B, *stores.argv, "--json")
    services = {t["service"]: t for t in json.loads(out)["services"]}
    assert code == 0 and set(services) == {"collection", "benefits"}
    assert {e["event_type"] for e in services["benefits"]["entries"]} >= {
        "PrestationEspecesDue",
        "DecisionEnAttente",
        "VersementDirect",
    }
    code, out = await mandat(capsys, "audit", "trail", "COT-NOWHERE", *stores.argv)
    assert code == 1 and "nothing recorded about COT-NOWHERE" in out


async def test_a_revision_s_trail_names_its_fact_and_the_record_as_it_stood_before(
    settings: ServiceSettings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A termination recorded late revises a delegated contribution: the trail shows the
    revision, the fact that caused it and the decision it supersedes; `--as-of-position`
    just before the fact shows the delegation as it stood; replay reproduces it all."""
    person = nir(3)
    store = await prepare_store(database_url, settings.collection_schema)
    try:
        feeder = Feeder(store, COLLECTION, settings)
        for event_type, payload in (
            organisme("OC-R"),
            affiliation(person, "OC-R"),
            convention("CNV-R", "OC-R"),
            cotisation("COT-R", person, debut="2017-07-01"),
        ):
            await feeder.send(event_type, payload)
        before = await store.head()
        await feeder.send(
            "ConventionResiliee", {"convention_id": "CNV-R", "effet_au": "2017-06-30"}
        )
    finally:
        await store.pool.close()
    argv = [
        "--database-url",
        database_url,
        "--collection-schema",
        settings.collection_schema,
        "--benefits-schema",
        settings.benefits_schema,
        "--service",
        "collection",
    ]

    code, out = await mandat(capsys, "audit", "trail", "COT-R", *argv, "--json")
    assert code == 0
    [trail] = json.loads(out)["services"]
    by_type = {e["event_type"]: e for e in trail["entries"]}
    revision, termination = by_type["EncaissementRevise"], by_type["ConventionResiliee"]
    assert revision["cause_position"] == termination["position"] == before + 1
    assert revision["revises_position"] == by_type["EncaissementDelegue"]["position"]

    code, out = await mandat(
        capsys, "audit", "trail", "COT-R", *argv, "--as-of-position", str(before), "--json"
    )
    assert code == 0, out
    [then] = json.loads(out)["services"]
    assert then["as_of_position"] == before
    assert [e["event_type"] for e in then["entries"] if e["role"] == "decision"] == [
        "EncaissementDelegue"
    ]

    code, out = await mandat(capsys, "replay", "verify", *argv)
    assert code == 0, out
