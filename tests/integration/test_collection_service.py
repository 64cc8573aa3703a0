"""The collection service end to end, through a real Kafka broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import asyncpg
import pytest
from support import (
    Feed,
    Received,
    affiliation,
    convention,
    cotisation,
    decisions_by_cause,
    nir,
    organisme,
    paiement,
    read_topics,
    send_registry,
    store_events,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import COLLECTION

pytestmark = pytest.mark.integration

FINAL = COLLECTION.final_types  # a revision settles no input


def of_type(messages: list[Received], event_type: str) -> list[Received]:
    return [m for m in messages if m.headers.get("event_type") == event_type.encode()]


async def test_a_delegated_contribution_and_its_payment_are_decided_and_published(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(1)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await send_registry(
            feed,
            s,
            s.collection_schema,
            organisme("OC-1"),
            convention("CNV-1", "OC-1"),
            affiliation(n, "OC-1"),
        )
        due_id = await feed.send(s.topic_cotisations, cotisation("COT-1", n))
        await feed.send(s.topic_cotisations, paiement("PAY-1", "COT-1", n, 50000))
        # the registry topic has partitions of its own: the contribution may be read before
        # its affiliation and parked first; what matters is its final decision
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: len(of_type(m, "PaiementEncaissePourCompte")) >= 1,
        )
        assert await wait_for_balance(s, "OC-1", 50000), "the live projection holds the payment"
    final = [m for m in got if m.event_type != "DecisionEnAttente"]
    delegated, held = final[0].json, final[1].json
    assert delegated["event_type"] == "EncaissementDelegue"
    assert delegated["causation_id"] == due_id
    assert delegated["payload"]["organisme_id"] == "OC-1"
    assert delegated["payload"]["convention_id"] == "CNV-1"
    assert delegated["payload"]["montant_cents"] == 195000
    assert delegated["payload"]["base_legale"] == ["CSS L611-20 al.1 (v. 2017-01-01)"]
    assert final[0].key == n.encode()
    assert {"event_type", "event_id", "schema_version"} <= set(final[0].headers)
    assert held["event_type"] == "PaiementEncaissePourCompte"
    assert held["payload"]["solde_restant_cents"] == 145000


async def wait_for_balance(s: ServiceSettings, organisme_id: str, cents: int) -> bool:
    """The running service keeps the money-held projection current (in a few seconds)."""
    conn = await asyncpg.connect(s.database_url.get_secret_value())
    try:
        for _ in range(50):
            held = await conn.fetchval(
                f'SELECT montant_cents FROM "{s.collection_schema}".projection_sommes_detenues'
                " WHERE organisme_id = $1 AND caisse_de_base = 'PL-IDF'",
                organisme_id,
            )
            if held == cents:
                return True
            await asyncio.sleep(0.2)
        return False
    finally:
        await conn.close()


async def test_a_parked_contribution_is_decided_when_its_affiliation_arrives(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(2)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        due_id = await feed.send(s.topic_cotisations, cotisation("COT-2", n))
        parked = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_cotisations], lambda m: len(m) >= 1
        )
        assert parked[0].json["payload"]["motif"] == "AFFILIATION_INCONNUE"
        await send_registry(
            feed, s, s.collection_schema, organisme("OC-2"), convention("CNV-2", "OC-2")
        )
        await feed.send(s.topic_referentiel, affiliation(n, "OC-2"))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_cotisations], lambda m: len(m) >= 2
        )
    assert [m.event_type for m in got] == ["DecisionEnAttente", "EncaissementDelegue"]
    assert got[1].json["causation_id"] == due_id


async def test_the_same_message_delivered_twice_has_one_effect(settings: ServiceSettings) -> None:
    s, n = settings, nir(3)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        event_id = await feed.send(s.topic_cotisations, cotisation("COT-3", n, debut="2018-01-01"))
        await feed.send(
            s.topic_cotisations, cotisation("COT-3", n, debut="2018-01-01"), event_id=event_id
        )
        marker = await feed.send(s.topic_cotisations, cotisation("COT-3b", n, debut="2018-01-01"))
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: any(x.json["causation_id"] == marker for x in m),
        )
    rows = await store_events(s.database_url.get_secret_value(), s.collection_schema)
    assert [m.json["causation_id"] for m in got].count(event_id) == 1
    assert decisions_by_cause(rows, FINAL)[event_id] == ["EncaissementNonDelegue"]
    assert sum(1 for r in rows if str(r["event_id"]) == event_id) == 1


async def test_a_contract_breach_is_rejected_and_the_messages_behind_it_are_still_decided(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(4)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await feed.raw(s.topic_cotisations, b"{not json", key=n.encode())
        bad_key = dict(cotisation("COT-4x", n)[1], nir=n[:13] + "00")
        await feed.raw(
            s.topic_cotisations,
            json.dumps(
                {
                    "event_id": "4a0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
                    "event_type": "CotisationDue",
                    "schema_version": 1,
                    "occurred_at": "2017-01-15T08:00:00Z",
                    "source": "x",
                    "payload": bad_key,
                }
            ).encode(),
            key=n.encode(),
        )
        negative = dict(cotisation("COT-4y", n)[1], montant_cents=-5)
        await feed.raw(
            s.topic_cotisations,
            json.dumps(
                {
                    "event_id": "5a0f6c1e-2b1a-4c55-9a0e-5b8f5d2f9b10",
                    "event_type": "CotisationDue",
                    "schema_version": 1,
                    "occurred_at": "2017-01-15T08:00:00Z",
                    "source": "x",
                    "payload": negative,
                }
            ).encode(),
            key=n.encode(),
        )
        good = await feed.send(s.topic_cotisations, cotisation("COT-4", n, debut="2016-03-01"))
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations, s.topic_rejets_collection],
            lambda m: len(m) >= 4,
        )
    rejected = [m for m in got if m.topic == s.topic_rejets_collection]
    decided = [m for m in got if m.topic == s.topic_reglements_cotisations]
    assert rejected[0].value[:9] == b"{not json"
    reasons = [m.headers["reject_reason"].decode() for m in rejected]
    assert "JSON" in reasons[0]
    assert "payload.nir" in reasons[1] and "key" in reasons[1]
    assert "payload.montant_cents" in reasons[2]
    assert all(m.headers["source_topic"].decode() == s.topic_cotisations for m in rejected)
    assert all(m.key == n.encode() for m in rejected)
    assert decided[0].json["causation_id"] == good
    assert decided[0].json["payload"]["motif"] == "PERIODE_ANTERIEURE_A_2017"


async def test_a_second_contribution_with_the_same_id_and_other_content_is_rejected(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(5)
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await feed.send(s.topic_cotisations, cotisation("COT-5", n, debut="2018-01-01"))
        await feed.send(s.topic_cotisations, cotisation("COT-5", n, debut="2018-01-01", montant=1))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_collection], lambda m: len(m) >= 1
        )
    reason = got[0].headers["reject_reason"].decode()
    assert "COT-5" in reason and "montant_cents" in reason


async def test_registry_and_contributions_in_any_order_give_every_decision_once(
    settings: ServiceSettings,
) -> None:
    """Payments before contributions, contributions before affiliations, all at once."""
    s = settings
    people = [nir(100 + i) for i in range(30)]
    async with build_runtime("collection", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        for i, n in enumerate(people):
            await feed.send(s.topic_cotisations, paiement(f"PAY-{i}", f"COT-{i}", n, 100000))
            await feed.send(s.topic_cotisations, cotisation(f"COT-{i}", n))
        await read_topics(  # every payment and every contribution is parked first
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: len(of_type(m, "DecisionEnAttente")) >= 2 * len(people),
        )
        await send_registry(  # the convention is known before the affiliations unpark them
            feed, s, s.collection_schema, organisme("OC-9"), convention("CNV-9", "OC-9")
        )
        await asyncio.gather(
            *(feed.send(s.topic_referentiel, affiliation(n, "OC-9")) for n in people)
        )
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_cotisations],
            lambda m: len(of_type(m, "PaiementEncaissePourCompte")) >= len(people),
        )
    counts = Counter(m.event_type for m in got)
    assert counts["EncaissementDelegue"] == len(people)
    assert counts["PaiementEncaissePourCompte"] == len(people)
    assert counts["DecisionEnAttente"] == 2 * len(people)
    assert len({m.headers["event_id"] for m in got}) == len(got)
    assert all(
        m.json["payload"]["solde_restant_cents"] == 95000
        for m in of_type(got, "PaiementEncaissePourCompte")
    )


async def test_readiness_says_so_when_the_consuming_task_has_ended(
    settings: ServiceSettings,
) -> None:
    """Nothing will consume again: not ready at once, with the reason."""
    runtime = build_runtime("collection", settings)
    async with runtime.running():
        assert (await runtime.probe())["ready"]
        for task in runtime.subscriber.tasks:
            task.cancel()
        await asyncio.sleep(0.1)
        state = await runtime.probe()
    assert not state["ready"]
    assert any("the consuming task ended" in r for r in state["reasons"]), state
