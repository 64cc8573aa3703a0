"""Phase 1 (and 3) of the scenario: the registry facts, i.e. organisms, conventions, their
terminations and the affiliations of the insured."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any, Final

from services.tools.demo.model import FACT, REFERENTIEL
from services.tools.demo.registry_data import CONVENTIONS, ORGANISMS, Convention

if TYPE_CHECKING:
    from services.tools.demo.builder import Builder
    from services.tools.demo.people import Person

_CAISSE_NATIONALE: Final = "caisse-nationale/RSI"


def declare_registry(b: Builder) -> None:
    """Organisms, then conventions, then the terminations of conventions."""
    for o in ORGANISMS:
        organisme_id = b.t(o.organisme_id)
        payload: dict[str, Any] = {
            "organisme_id": organisme_id,
            "nom": o.nom,
            "forme_juridique": o.forme_juridique,
        }
        _declare(b, "OrganismeDeclare", payload, date(2016, 12, 1), organisme_id, o.organisme_id)
    for c in CONVENTIONS:
        payload = conclusion(b, c)
        _declare(
            b,
            "ConventionConclue",
            payload,
            date(2016, 12, 15),
            payload["convention_id"],
            c.convention_id,
        )
    for c in CONVENTIONS:
        if c.resiliee_au is None:
            continue
        convention_id = b.t(c.convention_id)
        payload = {"convention_id": convention_id, "effet_au": c.resiliee_au.isoformat()}
        _declare(b, "ConventionResiliee", payload, c.resiliee_au, convention_id, c.convention_id)


def conclusion(b: Builder, c: Convention) -> dict[str, Any]:
    """The payload of the ConventionConclue of `c`."""
    return {
        "convention_id": b.t(c.convention_id),
        "organisme_id": b.t(c.organisme_id),
        "objet": c.objet,
        "caisses_de_base": list(c.caisses_de_base),
        "effet_du": c.effet_du.isoformat(),
        "effet_au": c.effet_au.isoformat() if c.effet_au else None,
    }


def _declare(
    b: Builder, event_type: str, payload: dict[str, Any], when: date, key: str, subject: str
) -> None:
    doc = b.envelope(event_type, payload, when, _CAISSE_NATIONALE, None)
    b.registry.append(b.message(REFERENTIEL, key, doc, phase=1, kind=FACT, subject=subject))


def affiliation(
    b: Builder,
    person: Person,
    organisme: str,
    mode: str,
    effet_du: date,
    *,
    recorded: date | None = None,
) -> dict[str, Any]:
    """The envelope of an AffiliationEnregistree of `person` to `organisme` (untagged),
    recorded on `recorded` (default: the day it takes effect)."""
    payload = {
        "nir": person.nir,
        "organisme_id": b.t(organisme),
        "mode": mode,
        "effet_du": effet_du.isoformat(),
    }
    return b.envelope(
        "AffiliationEnregistree",
        payload,
        recorded or effet_du,
        f"caisse-de-base/{person.caisse}",
        None,
    )


def affiliate(b: Builder, person: Person) -> None:
    """The affiliations of `person`: in phase 1, or in phase 3 when published late."""
    steps = [(person.debut, person.organisme, person.mode)]
    if person.change is not None:
        steps.append((person.change[0], person.change[1], "CHOIX"))
    target = b.late if person.late else b.registry
    for effet_du, organisme, mode in steps:
        doc = affiliation(b, person, organisme, mode, effet_du)
        target.append(
            b.message(
                REFERENTIEL,
                person.nir,
                doc,
                phase=3 if person.late else 1,
                kind=FACT,
                subject=f"affiliation #{person.index}",
            )
        )
