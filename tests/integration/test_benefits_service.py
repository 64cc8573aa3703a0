"""The benefits service (alinéa 2) end to end, through a real Kafka broker and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from support import (
    Feed,
    affiliation,
    convention,
    cotisation,
    decisions_by_cause,
    envelope,
    nir,
    organisme,
    prestation,
    read_topics,
    send_registry,
    store_events,
    wait_for_store,
)

from services.adapters.runtime.apps import build_runtime
from services.adapters.runtime.settings import ServiceSettings
from services.domain.catalog import BENEFITS

pytestmark = pytest.mark.integration

FINAL = BENEFITS.final_types  # a revision settles no input
VERSEMENT = "VERSEMENT_PRESTATIONS_ESPECES"
ENCAISSEMENT = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
AL2 = "CSS L611-20 al.2 (v. 2017-01-01)"
REGISTRY = frozenset({"OrganismeDeclare", "ConventionConclue", "AffiliationEnregistree"})


async def registry_recorded(s: ServiceSettings, count: int) -> None:
    """Wait until the service recorded `count` registry facts (no order between topics is
    assumed by the service, so a test that wants the registry known first waits for it)."""
    found = await wait_for_store(
        s.database_url.get_secret_value(), s.benefits_schema, REGISTRY, count, timeout=20
    )
    assert found == count, f"{found} registry facts recorded, {count} expected"


async def test_a_benefit_of_an_organism_holding_an_alinea_2_convention_is_paid_by_it(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(11)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        for fact in (
            organisme("OC-1"),
            convention("CNV-1", "OC-1", objet=VERSEMENT),
            affiliation(n, "OC-1"),
        ):
            await feed.send(s.topic_referentiel, fact)
        await registry_recorded(s, 3)
        due_id = await feed.send(
            s.topic_prestations, prestation("PRE-1", n, montant=236456, nature="IJ_MATERNITE")
        )
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_prestations], lambda m: len(m) >= 1
        )
    assert [m.event_type for m in got] == ["VersementDelegue"]
    message, decision = got[0], got[0].json
    p = decision["payload"]
    assert decision["event_type"] == "VersementDelegue"
    assert decision["causation_id"] == due_id
    assert (p["prestation_id"], p["organisme_id"], p["convention_id"]) == ("PRE-1", "OC-1", "CNV-1")
    assert (p["nature"], p["montant_cents"]) == ("IJ_MATERNITE", 236456)
    assert (p["nir"], p["caisse_de_base"]) == (n, "PL-IDF")
    assert AL2 in p["base_legale"]
    assert p["regles_version"]
    faits = p["faits_retenus"]
    assert faits["affiliation"]["organisme_id"] == "OC-1"
    assert faits["affiliation"]["effet_du"] == "2016-01-01"
    assert faits["organisme"] == {"organisme_id": "OC-1", "forme_juridique": "MUTUELLE"}
    assert faits["convention"]["convention_id"] == "CNV-1"
    assert faits["convention"]["objet"] == VERSEMENT
    assert message.key == n.encode()
    assert message.headers["event_type"] == b"VersementDelegue"
    assert message.headers["event_id"].decode() == decision["event_id"]
    assert message.headers["schema_version"] == b"1"


async def test_a_benefit_of_an_organism_with_only_an_alinea_1_convention_is_paid_directly(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(12)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        for fact in (
            organisme("OC-2"),
            convention("CNV-2", "OC-2", objet=ENCAISSEMENT),
            affiliation(n, "OC-2"),
        ):
            await feed.send(s.topic_referentiel, fact)
        await registry_recorded(s, 3)
        due_id = await feed.send(s.topic_prestations, prestation("PRE-2", n, categorie="ARTISAN"))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_prestations], lambda m: len(m) >= 1
        )
    assert [m.event_type for m in got] == ["VersementDirect"]
    decision = got[0].json
    p = decision["payload"]
    assert decision["causation_id"] == due_id
    assert (p["prestation_id"], p["motif"]) == ("PRE-2", "AUCUNE_CONVENTION")
    assert (p["nature"], p["montant_cents"]) == ("ALLOCATION_REPOS_MATERNEL", 326900)
    assert "organisme_id" not in p and "convention_id" not in p
    assert AL2 in p["base_legale"]
    assert p["faits_retenus"]["organisme"]["organisme_id"] == "OC-2"
    assert "convention" not in p["faits_retenus"]
    assert got[0].key == n.encode()


async def test_a_benefit_arising_before_2017_is_not_handled(settings: ServiceSettings) -> None:
    s, n = settings, nir(13)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        due_id = await feed.send(s.topic_prestations, prestation("PRE-3", n, jour="2016-12-31"))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_prestations], lambda m: len(m) >= 1
        )
    assert [m.event_type for m in got] == ["PrestationNonTraitee"]
    p = got[0].json["payload"]
    assert got[0].json["causation_id"] == due_id
    assert (p["prestation_id"], p["motif"]) == ("PRE-3", "PERIODE_ANTERIEURE_A_2017")


async def test_a_parked_benefit_is_decided_when_its_affiliation_arrives(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(14)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        due_id = await feed.send(s.topic_prestations, prestation("PRE-4", n))
        parked = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_prestations], lambda m: len(m) >= 1
        )
        assert [m.event_type for m in parked] == ["DecisionEnAttente"]
        assert parked[0].json["payload"]["motif"] == "AFFILIATION_INCONNUE"
        assert parked[0].json["payload"]["sujet_id"] == "PRE-4"
        assert parked[0].json["causation_id"] == due_id
        await send_registry(
            feed,
            s,
            s.benefits_schema,
            organisme("OC-4"),
            convention("CNV-4", "OC-4", objet=VERSEMENT),
        )
        await feed.send(s.topic_referentiel, affiliation(n, "OC-4"))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_reglements_prestations], lambda m: len(m) >= 2
        )
    assert [m.event_type for m in got] == ["DecisionEnAttente", "VersementDelegue"]
    assert got[1].json["causation_id"] == due_id
    assert got[1].json["payload"]["convention_id"] == "CNV-4"
    rows = await store_events(s.database_url.get_secret_value(), s.benefits_schema)
    assert decisions_by_cause(rows, FINAL) == {due_id: ["VersementDelegue"]}


async def test_the_same_benefit_message_delivered_twice_has_one_effect(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(15)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        fact = prestation("PRE-5", n, jour="2016-06-01")
        event_id = await feed.send(s.topic_prestations, fact)
        await feed.send(s.topic_prestations, fact, event_id=event_id)
        registry_id = await feed.send(s.topic_referentiel, organisme("OC-5"))
        await feed.send(s.topic_referentiel, organisme("OC-5"), event_id=registry_id)
        await registry_recorded(s, 1)
        marker = await feed.send(s.topic_prestations, prestation("PRE-5b", n, jour="2016-06-01"))
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_prestations],
            lambda m: any(x.json["causation_id"] == marker for x in m),
        )
        rejected = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_benefits], lambda m: False, timeout=1
        )
    rows = await store_events(s.database_url.get_secret_value(), s.benefits_schema)
    assert [m.json["causation_id"] for m in got].count(event_id) == 1
    assert decisions_by_cause(rows, FINAL)[event_id] == ["PrestationNonTraitee"]
    assert sum(1 for r in rows if str(r["event_id"]) == event_id) == 1
    assert sum(1 for r in rows if str(r["event_id"]) == registry_id) == 1
    assert rejected == []


async def test_a_second_benefit_with_the_same_id_and_other_content_is_rejected(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(16)
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        await feed.send(s.topic_prestations, prestation("PRE-6", n, jour="2016-06-01"))
        await feed.send(s.topic_prestations, prestation("PRE-6", n, jour="2016-06-01", montant=1))
        got = await read_topics(
            s.kafka_bootstrap_servers, [s.topic_rejets_benefits], lambda m: len(m) >= 1
        )
    reason = got[0].headers["reject_reason"].decode()
    assert "PRE-6" in reason and "montant_cents" in reason


def raw(event_type: str, payload: dict[str, object]) -> bytes:
    return envelope(event_type, payload)


async def test_contract_breaches_are_rejected_untouched_and_the_benefits_behind_them_decided(
    settings: ServiceSettings,
) -> None:
    s, n = settings, nir(17)
    good_payload = prestation("PRE-7", n, jour="2016-03-01")[1]
    missing = {k: v for k, v in good_payload.items() if k != "caisse_de_base"}
    breaches = [
        b"{not json",
        raw("PrestationEnNature", good_payload),
        raw("PrestationEspecesDue", dict(good_payload, nir=n[:13] + "00")),
        raw("PrestationEspecesDue", dict(good_payload, montant_cents=-5)),
        raw("PrestationEspecesDue", missing),
        raw(*cotisation("COT-7", n)),
    ]
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        for value in breaches:  # same key as the good one: the same partition, ahead of it
            await feed.raw(s.topic_prestations, value, key=n.encode())
        good = await feed.send(s.topic_prestations, prestation("PRE-7", n, jour="2016-03-01"))
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_prestations, s.topic_rejets_benefits],
            lambda m: len(m) >= len(breaches) + 1,
        )
    rejected = [m for m in got if m.topic == s.topic_rejets_benefits]
    decided = [m for m in got if m.topic == s.topic_reglements_prestations]
    assert [m.value for m in rejected] == breaches
    assert all(m.key == n.encode() for m in rejected)
    assert all(m.headers["source_topic"].decode() == s.topic_prestations for m in rejected)
    assert all(m.headers["source_partition"] for m in rejected)
    assert [int(m.headers["source_offset"]) for m in rejected] == sorted(
        int(m.headers["source_offset"]) for m in rejected
    )
    reasons = [m.headers["reject_reason"].decode() for m in rejected]
    assert "JSON" in reasons[0]
    assert "event_type" in reasons[1] and "PrestationEnNature" in reasons[1]
    assert "payload.nir" in reasons[2] and "key" in reasons[2]
    assert "payload.montant_cents" in reasons[3]
    assert "payload.caisse_de_base" in reasons[4]
    assert "CotisationDue" in reasons[5] and "not allowed" in reasons[5]
    assert [m.headers.get("reject_field") for m in rejected[2:]] == [
        b"payload.nir",
        b"payload.montant_cents",
        b"payload.caisse_de_base",
        b"event_type",
    ]
    assert [m.event_type for m in decided] == ["PrestationNonTraitee"]
    assert decided[0].json["causation_id"] == good
    rows = await store_events(s.database_url.get_secret_value(), s.benefits_schema)
    assert not any(r["event_type"] == "CotisationDue" for r in rows)


async def test_registry_and_benefits_in_any_order_give_every_decision_once(
    settings: ServiceSettings,
) -> None:
    """Benefits before the affiliations, every category and nature, all at once."""
    s = settings
    people = [nir(200 + i) for i in range(24)]
    categories = ("ARTISAN", "COMMERCANT", "PROFESSION_LIBERALE")
    natures = ("IJ_MALADIE", "IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE")
    async with build_runtime("benefits", s).running(), Feed(s.kafka_bootstrap_servers) as feed:
        for i, n in enumerate(people):
            await feed.send(
                s.topic_prestations,
                prestation(f"PRE-{i}", n, categorie=categories[i % 3], nature=natures[i % 4]),
            )
        await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_prestations],
            lambda m: len(m) >= len(people),
        )  # all parked: no affiliation yet
        for fact in (organisme("OC-9"), convention("CNV-9", "OC-9", objet=VERSEMENT)):
            await feed.send(s.topic_referentiel, fact)
        await registry_recorded(s, 2)  # else a benefit may be decided before the convention
        await asyncio.gather(
            *(feed.send(s.topic_referentiel, affiliation(n, "OC-9")) for n in people)
        )
        got = await read_topics(
            s.kafka_bootstrap_servers,
            [s.topic_reglements_prestations],
            lambda m: sum(x.event_type == "VersementDelegue" for x in m) >= len(people),
        )
    counts = Counter(m.event_type for m in got)
    assert counts["VersementDelegue"] == len(people)
    assert counts["DecisionEnAttente"] == len(people)
    assert len({m.headers["event_id"] for m in got}) == len(got)
    delegated = [m.json["payload"] for m in got if m.event_type == "VersementDelegue"]
    assert {p["convention_id"] for p in delegated} == {"CNV-9"}
    assert {p["nature"] for p in delegated} == set(natures)
    for n in people:  # one partition per NIR: its decisions in order
        assert [m.event_type for m in got if m.key == n.encode()] == [
            "DecisionEnAttente",
            "VersementDelegue",
        ]
