"""The referentiel as a service knows it at a point of its store.

Organisms, conventions and affiliations are folded from the registry facts recorded in the
store, in store order. Conventions and affiliations are effective-dated with inclusive
bounds; an affiliation is in force from its `effet_du` until the next one of the same NIR.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from contracts.topics import REFERENTIEL_EVENT_TYPES

REGISTRY_EVENT_TYPES = REFERENTIEL_EVENT_TYPES
"""The registry facts: what the registry topic carries."""


@dataclass(frozen=True, slots=True)
class Organisme:
    """A body that may hold conventions: a mutual, an insurer, a group of insurers..."""

    organisme_id: str
    nom: str
    forme_juridique: str


@dataclass(frozen=True, slots=True)
class Convention:
    """Caisse nationale ↔ organism contract for one alinéa, some caisses de base, dates."""

    convention_id: str
    organisme_id: str
    objet: str
    caisses_de_base: frozenset[str]
    effet_du: date
    effet_au: date | None

    def en_vigueur(self, jour: date) -> bool:
        """Whether the convention is in force on `jour` (bounds inclusive)."""
        return self.effet_du <= jour and (self.effet_au is None or jour <= self.effet_au)

    def couvre(self, objet: str, caisse_de_base: str, jour: date) -> bool:
        """Whether it covers this object, for this caisse de base, on this day."""
        return (
            self.objet == objet and caisse_de_base in self.caisses_de_base and self.en_vigueur(jour)
        )


@dataclass(frozen=True, slots=True)
class Affiliation:
    """The organism a NIR is attached to, from a date (by choice or d'office)."""

    nir: str
    organisme_id: str
    mode: str
    effet_du: date
    sequence: int  # order of recording: the later of two affiliations on one day wins


class Registry:
    """Registry state, folded fact by fact. Read by the pure rules, written only by `apply`."""

    def __init__(self) -> None:
        self.organismes: dict[str, Organisme] = {}
        self.conventions: dict[str, Convention] = {}
        self._by_organisme: dict[str, list[str]] = {}
        self._affiliations: dict[str, list[Affiliation]] = {}
        self._terminations: dict[str, date] = {}  # last day in force, as terminated
        self._concluded_until: dict[str, date | None] = {}  # effet_au of the conclusion
        self._sequence = 0

    # -- reading -------------------------------------------------------------------------
    def affiliation_at(self, nir: str, jour: date) -> Affiliation | None:
        """The affiliation of `nir` in force on `jour`, if any."""
        history = self._affiliations.get(nir)
        if not history:
            return None
        index = bisect.bisect_right(
            history, (jour, 1 << 62), key=lambda a: (a.effet_du, a.sequence)
        )
        return history[index - 1] if index else None

    def affiliations_of(self, nir: str) -> tuple[Affiliation, ...]:
        """Every affiliation recorded for `nir`, by effective date."""
        return tuple(self._affiliations.get(nir, ()))

    def convention_for(
        self, organisme_id: str, objet: str, caisse_de_base: str, jour: date
    ) -> Convention | None:
        """The organism's convention covering (objet, caisse, jour): the earliest in force,
        then the smallest id, so the choice never depends on arrival order."""
        candidates = [
            c
            for cid in self._by_organisme.get(organisme_id, ())
            if (c := self.conventions[cid]).couvre(objet, caisse_de_base, jour)
        ]
        return min(candidates, key=lambda c: (c.effet_du, c.convention_id), default=None)

    # -- folding -------------------------------------------------------------------------
    def apply(self, event_type: str, payload: dict[str, Any]) -> None:
        """Fold one registry fact (payload as recorded: JSON, ISO dates)."""
        if event_type == "OrganismeDeclare":
            self._declare(payload)
        elif event_type == "ConventionConclue":
            self._conclude(payload)
        elif event_type == "ConventionResiliee":
            self._terminate(payload["convention_id"], date.fromisoformat(payload["effet_au"]))
        elif event_type == "AffiliationEnregistree":
            self._affiliate(payload)
        else:
            raise ValueError(f"not a registry fact: {event_type}")

    def _declare(self, p: dict[str, Any]) -> None:
        self.organismes[p["organisme_id"]] = Organisme(
            p["organisme_id"], p["nom"], p["forme_juridique"]
        )

    def _conclude(self, p: dict[str, Any]) -> None:
        effet_au = p.get("effet_au")
        convention = Convention(
            convention_id=p["convention_id"],
            organisme_id=p["organisme_id"],
            objet=p["objet"],
            caisses_de_base=frozenset(p["caisses_de_base"]),
            effet_du=date.fromisoformat(p["effet_du"]),
            effet_au=date.fromisoformat(effet_au) if effet_au else None,
        )
        self._concluded_until[convention.convention_id] = convention.effet_au
        convention = replace(convention, effet_au=self._last_day(convention.convention_id))
        previous = self.conventions.get(convention.convention_id)
        if previous is not None:
            self._by_organisme[previous.organisme_id].remove(previous.convention_id)
        self.conventions[convention.convention_id] = convention
        self._by_organisme.setdefault(convention.organisme_id, []).append(convention.convention_id)

    def _terminate(self, convention_id: str, effet_au: date) -> None:
        self._terminations[convention_id] = effet_au  # a later termination corrects it
        convention = self.conventions.get(convention_id)
        if convention is not None:
            self.conventions[convention_id] = replace(
                convention, effet_au=self._last_day(convention_id)
            )

    def _last_day(self, convention_id: str) -> date | None:
        """The earlier of the conclusion's end and the termination: the same whichever was
        recorded first (no order is assumed), and kept when a conclusion is sent again."""
        ends = [
            d
            for d in (
                self._concluded_until.get(convention_id),
                self._terminations.get(convention_id),
            )
            if d is not None
        ]
        return min(ends, default=None)

    def _affiliate(self, p: dict[str, Any]) -> None:
        self._sequence += 1
        affiliation = Affiliation(
            nir=p["nir"],
            organisme_id=p["organisme_id"],
            mode=p["mode"],
            effet_du=date.fromisoformat(p["effet_du"]),
            sequence=self._sequence,
        )
        history = self._affiliations.setdefault(affiliation.nir, [])
        bisect.insort(history, affiliation, key=lambda a: (a.effet_du, a.sequence))
