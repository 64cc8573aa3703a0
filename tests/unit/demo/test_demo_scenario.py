"""The `mandat run` scenario: deterministic, isolated per run, realistic, and honest about
what must come of each message."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import date
from typing import Any

import pytest

from contracts import topics
from contracts.parsing import ContractError, parse_inbound
from services.tools.demo.scenario import (
    BREACH,
    CATEGORIES,
    CONFLICT,
    COTISATIONS,
    DUPLICATE,
    FACT,
    FORMES,
    INPUT,
    NATURES,
    PRESTATIONS,
    REFERENTIEL,
    RESEND,
    Message,
    Scenario,
    annual_contribution,
    generate,
    ij_forfaitaire,
)

pytestmark = pytest.mark.unit

ALLOWED = {
    REFERENTIEL: topics.REFERENTIEL_EVENT_TYPES,
    COTISATIONS: topics.COTISATIONS_EVENT_TYPES,
    PRESTATIONS: topics.PRESTATIONS_EVENT_TYPES,
}
ID_FIELDS = ("organisme_id", "convention_id", "cotisation_id", "paiement_id", "prestation_id")


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return generate(2000, 42, "RUNA")


def _valid(scenario: Scenario) -> list[tuple[Message, dict[str, Any]]]:
    return [(m, m.document()) for m in scenario.messages if m.kind != BREACH]


def _shape(scenario: Scenario) -> list[tuple[object, ...]]:
    """What a scenario is once its run tag, NIRs and event ids are set aside."""
    shape: list[tuple[object, ...]] = []
    for m in scenario.messages:
        if m.kind == BREACH:
            shape.append((m.topic, m.kind, m.event_type, m.subject, m.note))
            continue
        payload = dict(m.document()["payload"])
        payload.pop("nir", None)
        text = scenario.untag(json.dumps(payload, sort_keys=True))
        shape.append((m.topic, m.phase, m.kind, m.event_type, m.subject, m.parks, text))
    return shape


def test_the_same_seed_gives_the_same_scenario() -> None:
    assert generate(500, 7, "RX") == generate(500, 7, "RX")


def test_another_run_tag_gives_the_same_shape_with_other_ids_nirs_and_event_ids() -> None:
    a, b = generate(500, 7, "RA"), generate(500, 7, "RB")
    assert _shape(a) == _shape(b)
    assert a.expected() == b.expected() and a.counts() == b.counts()
    ids_a = {m.event_id for m in a.messages}
    assert not ids_a & {m.event_id for m in b.messages}
    nirs_a = {m.key for m in a.messages if m.topic != REFERENTIEL}
    assert not nirs_a & {m.key for m in b.messages if m.topic != REFERENTIEL}


def test_another_seed_gives_another_scenario() -> None:
    assert _shape(generate(500, 7, "RA")) != _shape(generate(500, 8, "RA"))


def test_every_business_id_carries_the_run_tag(scenario: Scenario) -> None:
    seen = 0
    for _m, doc in _valid(scenario):
        for name in ID_FIELDS:
            if name in doc["payload"]:
                assert doc["payload"][name].startswith("RUNA-"), (name, doc["payload"][name])
                seen += 1
    assert seen > 2000


def test_run_tags_are_checked() -> None:
    for bad in ("", "has space", "a-b", "x" * 17):
        with pytest.raises(ValueError):
            generate(10, 1, bad)


@pytest.mark.parametrize("size", [150, 2000, 20000])
def test_size_is_about_the_number_of_contribution_and_benefit_inputs(size: int) -> None:
    s = generate(size, 3, "RS")
    inputs = [m for m in s.messages if m.kind == INPUT]
    assert all(m.topic in (COTISATIONS, PRESTATIONS) for m in inputs)
    assert abs(len(inputs) - size) <= max(5, size // 50)


def test_breaches_break_the_contract_and_everything_else_keeps_it(scenario: Scenario) -> None:
    breaches: Counter[str] = Counter()
    for m in scenario.messages:
        if m.kind == BREACH:
            with pytest.raises(ContractError):
                parse_inbound(m.value, allowed=ALLOWED[m.topic])
            breaches[m.note] += 1
        else:
            event = parse_inbound(m.value, allowed=ALLOWED[m.topic])
            assert str(event.event_id) == m.event_id and event.event_type == m.event_type
    assert set(breaches) == {
        "bad JSON",
        "unknown event_type",
        "invalid NIR key",
        "negative amount",
        "missing field",
        "unknown mode",
    }
    assert 5 <= sum(breaches.values()) <= 20


def test_keys_are_those_of_the_contract(scenario: Scenario) -> None:
    for m, doc in _valid(scenario):
        p = doc["payload"]
        expected = {
            "OrganismeDeclare": p.get("organisme_id"),
            "ConventionConclue": p.get("convention_id"),
            "ConventionResiliee": p.get("convention_id"),
        }.get(doc["event_type"], p.get("nir"))
        assert m.key == expected.encode(), doc["event_type"]


def test_the_registry_has_every_legal_form_object_and_mode(scenario: Scenario) -> None:
    facts = defaultdict(list)
    for m, doc in _valid(scenario):
        if m.kind == FACT and m.phase < 4:  # phase 4: facts recorded late (tested apart)
            facts[doc["event_type"]].append(doc["payload"])
    formes = Counter(o["forme_juridique"] for o in facts["OrganismeDeclare"])
    assert set(formes) == set(FORMES) and min(formes.values()) >= 2
    conventions = facts["ConventionConclue"]
    assert {c["objet"] for c in conventions} == {
        "ENCAISSEMENT_CONTENTIEUX_COTISATIONS",
        "VERSEMENT_PRESTATIONS_ESPECES",
    }
    caisses = {c for conv in conventions for c in conv["caisses_de_base"]}
    assert {"PL-IDF", "PL-PACA", "PL-ARA"} <= caisses
    (terminated,) = facts["ConventionResiliee"]
    assert date.fromisoformat(terminated["effet_au"]).year == 2017
    assert 5 <= date.fromisoformat(terminated["effet_au"]).month <= 8
    affiliations = facts["AffiliationEnregistree"]
    assert {a["mode"] for a in affiliations} == {"CHOIX", "OFFICE"}
    by_nir = defaultdict(set)
    for a in affiliations:
        by_nir[a["nir"]].add(a["organisme_id"])
    changed = [n for n, orgs in by_nir.items() if len(orgs) > 1]
    assert changed, "some insured change organism"


def test_contributions_cover_three_years_three_categories_and_every_payment_story(
    scenario: Scenario,
) -> None:
    dues = scenario.payloads("CotisationDue")
    assert {(d["periode"]["debut"][:4], d["categorie"]) for d in dues} == {
        (str(y), c) for y in (2016, 2017, 2018) for c in CATEGORIES
    }
    paid: defaultdict[str, int] = defaultdict(int)
    for p in scenario.payloads("PaiementRecu"):
        paid[p["cotisation_id"]] += p["montant_cents"]
    unpaid = {u["cotisation_id"] for u in scenario.payloads("CotisationImpayee")}
    stories: Counter[str] = Counter()
    for d in dues:
        got = paid.get(d["cotisation_id"], 0)
        stories[
            "full"
            if got == d["montant_cents"]
            else "excess"
            if got > d["montant_cents"]
            else "partial"
            if got
            else "none"
        ] += 1
    assert all(stories[s] > 0 for s in ("full", "excess", "partial", "none"))
    assert len(unpaid) > 0


def test_amounts_follow_the_domain_figures(scenario: Scenario) -> None:
    assert annual_contribution(3_000_000, 2017) == 195_000  # domain.md: 30,000 € -> 1,950 €
    assert ij_forfaitaire(2017) == 5_374
    for d in scenario.payloads("CotisationDue"):
        assert 0 < d["montant_cents"] < 2_000_000  # under 20,000 € a year
    benefits = scenario.payloads("PrestationEspecesDue")
    assert {(b["categorie"], b["nature"]) for b in benefits} >= {
        (c, n)
        for c in CATEGORIES
        for n in NATURES
        if not (c == "PROFESSION_LIBERALE" and n == "IJ_MALADIE")
    }
    for b in benefits:
        year = int(b["fait_generateur_le"][:4])
        if b["nature"] == "ALLOCATION_REPOS_MATERNEL":
            assert b["montant_cents"] == {2016: 321_800, 2017: 326_900, 2018: 331_100}[year]
            assert b["periode"] is None
        if b["nature"] == "IJ_MATERNITE" and year == 2017:
            assert b["montant_cents"] % 5_374 == 0
        if b["nature"] == "IJ_MALADIE":
            assert b["categorie"] != "PROFESSION_LIBERALE"  # none before 2021-07-01
        if b["nature"] in ("IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL"):
            assert b["nir"][0] == "2"
    assert {int(b["fait_generateur_le"][:4]) for b in benefits} == {2016, 2017, 2018}


def test_some_facts_arrive_out_of_order(scenario: Scenario) -> None:
    position = {}
    early_payments = 0
    for i, m in enumerate(scenario.messages):
        if m.kind != INPUT:
            continue
        p = m.document()["payload"]
        if m.event_type == "CotisationDue":
            position[p["cotisation_id"]] = i
    for i, m in enumerate(scenario.messages):
        if m.kind == INPUT and m.event_type == "PaiementRecu":
            p = m.document()["payload"]
            if i < position[p["cotisation_id"]]:
                early_payments += 1
                assert m.parks
    assert early_payments >= 1
    late = [m for m in scenario.messages if m.phase == 3]
    assert late and all(m.event_type == "AffiliationEnregistree" for m in late)
    late_nirs = {m.key for m in late}
    parked = [m for m in scenario.messages if m.parks and m.key in late_nirs]
    assert any(m.event_type == "CotisationDue" for m in parked)
    assert any(m.event_type == "PrestationEspecesDue" for m in parked)


def test_duplicates_resends_and_conflicts(scenario: Scenario) -> None:
    first: dict[str, int] = {}
    for i, m in enumerate(scenario.messages):
        if m.kind == DUPLICATE:
            assert m.event_id in first, "a duplicate comes after its original"
            original = scenario.messages[first[m.event_id]]
            assert (original.value, original.key, original.topic) == (m.value, m.key, m.topic)
        elif m.event_id is not None:
            first.setdefault(m.event_id, i)
    kinds = Counter(m.kind for m in scenario.messages)
    assert kinds[DUPLICATE] >= 3 and kinds[RESEND] >= 1 and kinds[CONFLICT] >= 2


def test_expected_outcomes_are_counted_from_the_messages(scenario: Scenario) -> None:
    expected = scenario.expected()
    kinds = Counter((m.topic, m.kind) for m in scenario.messages)
    assert expected["collection"]["decided"] == kinds[(COTISATIONS, INPUT)]
    assert expected["benefits"]["decided"] == kinds[(PRESTATIONS, INPUT)]
    referentiel_breaches = kinds[(REFERENTIEL, BREACH)]
    assert expected["collection"]["rejected"] == (
        kinds[(COTISATIONS, BREACH)] + kinds[(COTISATIONS, CONFLICT)] + referentiel_breaches
    )
    assert expected["benefits"]["rejected"] == (
        kinds[(PRESTATIONS, BREACH)] + kinds[(PRESTATIONS, CONFLICT)] + referentiel_breaches
    )
    assert expected["collection"]["parked"] > 0 and expected["benefits"]["parked"] > 0


def test_nirs_are_valid_and_unique_per_person(scenario: Scenario) -> None:
    nirs = {
        m.document()["payload"]["nir"]
        for m in scenario.messages
        if m.kind == FACT and m.event_type == "AffiliationEnregistree"
    }
    assert len(nirs) > 100
    assert all(re.fullmatch(r"[12][0-9]{4}(?:[0-9]{2}|2A|2B)[0-9]{8}", n) for n in nirs)


def test_late_registry_facts_revise_decided_inputs_then_inputs_follow(
    scenario: Scenario,
) -> None:
    """Phase 4: a convention terminated in the past of decided contributions, one sent
    again with another list of caisses, affiliations to another organism from an earlier
    date; phase 5: inputs of both services after them (they tell the run the revisions are
    out). The facts recorded late concern no organism in common, so their order does not
    matter."""
    on_time = [m.document() for m in scenario.messages if m.phase < 4 and m.kind == FACT]
    late = [m for m in scenario.messages if m.phase == 4]
    assert late and all(m.kind == FACT and m.topic == REFERENTIEL for m in late)
    assert all(m.phase == 5 for m in scenario.messages[len(scenario.messages) - 3 :])
    by_type = defaultdict(list)
    for m in late:
        by_type[m.event_type].append(m.document()["payload"])
    decided_from = {
        p["cotisation_id"]: p["periode"]["debut"] for p in scenario.payloads("CotisationDue")
    }
    assert any(
        e["effet_au"] < debut < "2018"
        for e in by_type["ConventionResiliee"]
        for debut in decided_from.values()
    )
    concluded = {
        d["payload"]["convention_id"]: d["payload"]
        for d in on_time
        if d["event_type"] == "ConventionConclue"
    }
    (resent,) = by_type["ConventionConclue"]
    first = concluded[resent["convention_id"]]
    assert set(resent["caisses_de_base"]) != set(first["caisses_de_base"])
    assert {k: v for k, v in resent.items() if k != "caisses_de_base"} == {
        k: v for k, v in first.items() if k != "caisses_de_base"
    }
    earlier: dict[str, dict[str, Any]] = {}
    for d in on_time:
        if d["event_type"] == "AffiliationEnregistree":
            earlier.setdefault(d["payload"]["nir"], d["payload"])
    moved = by_type["AffiliationEnregistree"]
    assert moved
    for a in moved:
        before = earlier[a["nir"]]
        assert a["organisme_id"] != before["organisme_id"]
        assert before["effet_du"] < a["effet_du"] < "2017-07-01"  # before decided inputs
    convention_organisms = {
        concluded[p["convention_id"]]["organisme_id"] for p in by_type["ConventionResiliee"]
    } | {resent["organisme_id"]}
    assert not any(
        a["organisme_id"] in convention_organisms
        or earlier[a["nir"]]["organisme_id"] in convention_organisms
        for a in moved
    )
    follow = [m for m in scenario.messages if m.phase == 5]
    assert {m.topic for m in follow} == {COTISATIONS, PRESTATIONS}
    assert all(m.kind == INPUT and not m.parks for m in follow)
