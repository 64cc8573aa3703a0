"""Both services at once on the same registry topic, each in its own consumer group."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    create_topics,
    decisions_by_cause,
    nir,
    organisme,
    prestation,
    publish_many,
    read_topics,
    store_events,
    wait_for_store,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS, COLLECTION
from services.domain.kernel.processing import REJECTION

pytestmark = pytest.mark.integration

COLLECTION_FINAL = COLLECTION.final_types  # a revision settles no input
BENEFITS_FINAL = BENEFITS.final_types
REGISTRY = frozenset({"OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree"})
PEOPLE = 40


def registry() -> list[tuple[str, dict[str, object]]]:
    """OC-A holds conventions for both alinéas, OC-B only for alinéa 1; even people are
    affiliated to OC-A, odd ones to OC-B."""
    facts = [
        organisme("OC-A"),
        organisme("OC-B", "SOCIETE_ASSURANCE"),
        convention("CNV-A1", "OC-A"),
        convention("CNV-A2", "OC-A", objet="VERSEMENT_PRESTATIONS_ESPECES"),
        convention("CNV-B1", "OC-B"),
    ]
    return facts + [
        affiliation(nir(300 + i), "OC-A" if i % 2 == 0 else "OC-B") for i in range(PEOPLE)
    ]


async def test_both_services_share_the_registry_topic_and_decide_only_their_own_inputs(
    settings: ServiceSettings,
) -> None:
    s, dsn = settings, settings.database_url.get_secret_value()
    assert s.collection_group != s.benefits_group
    assert s.collection_schema != s.benefits_schema
    await create_topics(s)
    facts = registry()
    async with (
        build_runtime("collection", s).running(),
        build_runtime("benefits", s).running(),
        Feed(s.kafka_bootstrap_servers) as feed,
    ):
        registry_ids = await publish_many(feed, s.topic_referentiel, facts)
        # both groups must have read the whole registry before the inputs come, so that
        # every outcome is known in advance (no order between topics is assumed)
        recorded = await asyncio.gather(
            wait_for_store(dsn, s.collection_schema, REGISTRY, len(facts), timeout=20),
            wait_for_store(dsn, s.benefits_schema, REGISTRY, len(facts), timeout=20),
        )
        assert list(recorded) == [len(facts), len(facts)]
        people = [nir(300 + i) for i in range(PEOPLE)]
        cot_ids = await publish_many(
            feed, s.topic_cotisations, [cotisation(f"COT-{i}", n) for i, n in enumerate(people)]
        )
        pre_ids = await publish_many(
            feed, s.topic_prestations, [prestation(f"PRE-{i}", n) for i, n in enumerate(people)]
        )
        collected, paid = await asyncio.gather(
            read_topics(
                s.kafka_bootstrap_servers,
                [s.topic_reglements_cotisations],
                lambda m: len(m) >= PEOPLE,
            ),
            read_topics(
                s.kafka_bootstrap_servers,
                [s.topic_reglements_prestations],
                lambda m: len(m) >= PEOPLE,
            ),
        )
        await asyncio.sleep(1)  # a service wrongly reading the other's topic would show now
        rejected = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_rejets_collection, s.topic_rejets_benefits],
            lambda m: False,
            timeout=2,
        )
    collection_rows = await store_events(dsn, s.collection_schema)
    benefits_rows = await store_events(dsn, s.benefits_schema)

    # each service decided every one of its inputs, once, after its own registry view
    assert sorted(decisions_by_cause(collection_rows, COLLECTION_FINAL)) == sorted(cot_ids)
    assert sorted(decisions_by_cause(benefits_rows, BENEFITS_FINAL)) == sorted(pre_ids)
    assert Counter(m.event_type for m in collected) == {"EncaissementDelegue": PEOPLE}
    assert Counter(m.event_type for m in paid) == {
        "VersementDelegue": PEOPLE // 2,
        "VersementDirect": PEOPLE // 2,
    }
    assert sorted(m.json["causation_id"] for m in collected) == sorted(cot_ids)
    assert sorted(m.json["causation_id"] for m in paid) == sorted(pre_ids)
    assert {m.json["payload"]["convention_id"] for m in collected} == {"CNV-A1", "CNV-B1"}
    assert {
        m.json["payload"]["convention_id"] for m in paid if m.event_type == "VersementDelegue"
    } == {"CNV-A2"}

    # each keeps its own full view of the registry
    for rows in (collection_rows, benefits_rows):
        assert sorted(str(r["event_id"]) for r in rows if r["event_type"] in REGISTRY) == sorted(
            registry_ids
        )

    # neither consumed the other's inputs
    collection_types = {r["event_type"] for r in collection_rows}
    benefits_types = {r["event_type"] for r in benefits_rows}
    assert "PrestationEspecesDue" not in collection_types
    assert not benefits_types & {"CotisationDue", "PaiementRecu", "CotisationImpayee"}
    assert REJECTION not in collection_types and REJECTION not in benefits_types
    assert rejected == [], [(m.topic, m.headers.get("reject_reason")) for m in rejected]
    origins = {
        json.loads(r["metadata"])["origin"]["topic"]
        for r in collection_rows
        if r["event_type"] in REGISTRY | {"CotisationDue"}
    }
    assert origins == {s.topic_referentiel, s.topic_cotisations}
    origins = {
        json.loads(r["metadata"])["origin"]["topic"]
        for r in benefits_rows
        if r["event_type"] in REGISTRY | {"PrestationEspecesDue"}
    }
    assert origins == {s.topic_referentiel, s.topic_prestations}
