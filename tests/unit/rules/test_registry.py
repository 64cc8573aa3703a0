"""The effective-dated registry fold: which affiliation and which convention are in force."""

from __future__ import annotations

import itertools
from datetime import date
from typing import TYPE_CHECKING

import pytest

from contracts import ConventionConclue
from services.domain.registry import Registry, faits_retenus

if TYPE_CHECKING:
    # the fixtures' types: pytest imports conftest.py itself, a test module cannot import it
    # at run time; mypy knows the rules conftest under this name (see [tool.mypy])
    from unit.rules.conftest import Builders

pytestmark = pytest.mark.unit

ENC = "ENCAISSEMENT_CONTENTIEUX_COTISATIONS"
D = date.fromisoformat


def organism_at(registry: Registry, nir: str, day: str) -> str | None:
    affiliation = registry.affiliation_at(nir, D(day))
    return affiliation.organisme_id if affiliation else None


def convention_at(registry: Registry, organisme_id: str, caisse: str, day: str) -> str | None:
    convention = registry.convention_for(organisme_id, ENC, caisse, D(day))
    return convention.convention_id if convention else None


def test_no_affiliation_is_in_force_before_the_first_one_nor_for_an_unknown_nir(
    b: type[Builders],
) -> None:
    registry = b.registry(b.affiliation(du="2017-03-01"))
    assert organism_at(registry, b.NIR, "2017-02-28") is None
    assert organism_at(registry, b.NIR2, "2017-03-01") is None


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        ("2016-12-31", "OC-A"),
        ("2017-01-01", "OC-B"),
        ("2017-06-30", "OC-B"),
        ("2017-07-01", "OC-C"),
        ("2030-01-01", "OC-C"),
    ],
)
def test_the_affiliation_in_force_is_the_latest_starting_on_or_before_the_day(
    b: type[Builders], day: str, expected: str
) -> None:
    registry = b.registry(
        b.affiliation(oid="OC-C", du="2017-07-01"),
        b.affiliation(oid="OC-A", du="2016-01-01"),
        b.affiliation(oid="OC-B", du="2017-01-01"),
    )
    assert organism_at(registry, b.NIR, day) == expected


@pytest.mark.parametrize("order", [("OC-A", "OC-B"), ("OC-B", "OC-A")])
def test_two_affiliations_starting_the_same_day_are_decided_by_recording_order(
    b: type[Builders], order: tuple[str, str]
) -> None:
    first, last = order
    registry = b.registry(
        b.affiliation(oid="OC-0", du="2016-01-01"),
        b.affiliation(oid=first, du="2017-03-01"),
        b.affiliation(oid=last, du="2017-03-01"),
    )
    assert organism_at(registry, b.NIR, "2017-03-01") == last
    assert organism_at(registry, b.NIR, "2017-02-28") == "OC-0"
    assert [a.organisme_id for a in registry.affiliations_of(b.NIR)] == ["OC-0", first, last]


def test_affiliations_are_kept_per_nir(b: type[Builders]) -> None:
    registry = b.registry(
        b.affiliation(oid="OC-A"), b.affiliation(nir=b.NIR2, oid="OC-B", du="2017-01-01")
    )
    assert organism_at(registry, b.NIR, "2017-05-01") == "OC-A"
    assert organism_at(registry, b.NIR2, "2017-05-01") == "OC-B"


def test_the_affiliation_keeps_its_mode_and_effective_date(b: type[Builders]) -> None:
    registry = b.registry(b.affiliation(mode="OFFICE", du="2016-04-01"))
    affiliation = registry.affiliation_at(b.NIR, D("2017-01-01"))
    assert affiliation is not None
    assert (affiliation.mode, affiliation.effet_du) == ("OFFICE", D("2016-04-01"))


def conventions(b: type[Builders]) -> list[ConventionConclue]:
    return [
        b.convention(cid="CNV-B", du="2017-01-01"),
        b.convention(cid="CNV-A", du="2017-01-01"),
        b.convention(cid="CNV-0", du="2017-03-01", au="2017-12-31"),
    ]


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
@pytest.mark.parametrize(("day", "expected"), [("2017-02-01", "CNV-A"), ("2017-05-01", "CNV-A")])
def test_two_conventions_covering_a_day_choose_the_earliest_then_smallest_id_in_any_order(
    b: type[Builders], order: tuple[int, ...], day: str, expected: str
) -> None:
    facts = conventions(b)
    registry = b.registry(b.org(), *(facts[i] for i in order))
    chosen = registry.convention_for(b.OC, ENC, b.CAISSE, D(day))
    assert chosen is not None and chosen.convention_id == expected


def test_a_terminated_convention_gives_way_to_the_next_one_in_force(b: type[Builders]) -> None:
    registry = b.registry(
        b.convention(cid="CNV-A", du="2017-01-01"),
        b.convention(cid="CNV-B", du="2017-02-01"),
        b.resiliation(cid="CNV-A", au="2017-03-31"),
    )
    assert convention_at(registry, b.OC, b.CAISSE, "2017-03-31") == "CNV-A"
    assert convention_at(registry, b.OC, b.CAISSE, "2017-04-01") == "CNV-B"
    assert convention_at(registry, b.OC, b.CAISSE, "2017-01-31") == "CNV-A"


def test_convention_for_filters_on_organism_object_caisse_and_day(b: type[Builders]) -> None:
    registry = b.registry(
        b.convention(du="2017-01-01", au="2017-12-31", caisses=("PL-IDF", "PL-PACA"))
    )
    assert registry.convention_for(b.OC, ENC, "PL-PACA", D("2017-12-31")) is not None
    assert registry.convention_for("OC-OTHER", ENC, "PL-IDF", D("2017-06-01")) is None
    assert registry.convention_for(b.OC, b.VERS, "PL-IDF", D("2017-06-01")) is None
    assert registry.convention_for(b.OC, ENC, "PL-NORD", D("2017-06-01")) is None
    assert registry.convention_for(b.OC, ENC, "PL-IDF", D("2016-12-31")) is None
    assert registry.convention_for(b.OC, ENC, "PL-IDF", D("2018-01-01")) is None


@pytest.mark.parametrize("termination_first", [True, False])
def test_a_termination_applies_whether_recorded_before_or_after_its_conclusion(
    b: type[Builders], termination_first: bool
) -> None:
    facts = [b.convention(), b.resiliation(au="2017-06-30")]
    registry = b.registry(*(reversed(facts) if termination_first else facts))
    assert registry.conventions[b.CNV].effet_au == D("2017-06-30")
    assert registry.convention_for(b.OC, ENC, b.CAISSE, D("2017-06-30")) is not None
    assert registry.convention_for(b.OC, ENC, b.CAISSE, D("2017-07-01")) is None


@pytest.mark.parametrize("termination_first", [False, True])
def test_a_termination_later_than_the_concluded_end_does_not_extend_it(
    b: type[Builders], termination_first: bool
) -> None:
    facts = [b.convention(au="2017-06-30"), b.resiliation(au="2017-09-30")]
    registry = b.registry(*(reversed(facts) if termination_first else facts))
    assert registry.conventions[b.CNV].effet_au == D("2017-06-30")


def test_a_termination_stands_when_its_convention_is_concluded_again(b: type[Builders]) -> None:
    registry = b.registry(b.convention(), b.resiliation(au="2017-06-30"), b.convention())
    assert registry.conventions[b.CNV].effet_au == D("2017-06-30")
    assert registry.convention_for(b.OC, ENC, b.CAISSE, D("2017-07-01")) is None


def test_a_convention_concluded_again_under_its_id_is_replaced_not_doubled(
    b: type[Builders],
) -> None:
    registry = b.registry(b.org(), b.org(oid="OC-B"), b.convention(), b.convention(oid="OC-B"))
    assert registry.convention_for(b.OC, ENC, b.CAISSE, D("2017-06-01")) is None
    replacing = registry.convention_for("OC-B", ENC, b.CAISSE, D("2017-06-01"))
    assert replacing is not None and replacing.organisme_id == "OC-B"
    assert list(registry.conventions) == [b.CNV]


def test_an_organism_declared_again_takes_its_new_legal_form(b: type[Builders]) -> None:
    registry = b.registry(b.org(), b.org(forme="SOCIETE_ASSURANCE"))
    assert registry.organismes[b.OC].forme_juridique == "SOCIETE_ASSURANCE"


def test_a_fact_that_is_not_a_registry_fact_is_refused() -> None:
    with pytest.raises(ValueError, match="not a registry fact"):
        Registry().apply("CotisationDue", {})


def test_faits_retenus_name_the_facts_a_decision_relied_on(b: type[Builders]) -> None:
    registry = b.registry(
        b.org(forme="SOCIETE_ASSURANCE"),
        b.affiliation(mode="OFFICE"),
        b.convention(au="2017-12-31"),
    )
    affiliation = registry.affiliation_at(b.NIR, D("2017-01-01"))
    assert affiliation is not None
    organisme = registry.organismes[b.OC]
    convention = registry.conventions[b.CNV]
    assert faits_retenus(affiliation, organisme, None) == {
        "affiliation": {"organisme_id": b.OC, "mode": "OFFICE", "effet_du": "2016-01-01"},
        "organisme": {"organisme_id": b.OC, "forme_juridique": "SOCIETE_ASSURANCE"},
    }
    assert faits_retenus(affiliation, organisme, convention)["convention"] == {
        "convention_id": b.CNV,
        "objet": ENC,
        "effet_du": "2017-01-01",
        "effet_au": "2017-12-31",
    }
