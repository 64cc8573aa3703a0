"""The referentiel as a service knows it at a point of its store.

Organisms, conventions and affiliations are folded from the registry facts recorded in the
store, in store order. Conventions and affiliations are effective-dated with inclusive
bounds; an affiliation is in force from its `effet_du` until the next one of the same NIR.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from contracts.topics import REFERENTIEL_EVENT_TYPES
from services.domain.state import PairIndex

REGISTRY_EVENT_TYPES = REFERENTIEL_EVENT_TYPES
"""The registry facts: what the registry topic carries."""

ABOUT_ORGANISMS = REGISTRY_EVENT_TYPES - {"AffiliationEnregistree"}
"""The registry facts about organisms and conventions (not about one person): in a store
in shards, every shard records them."""


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


@dataclass(frozen=True, slots=True)
class ConventionFacts:
    """What the registry recorded about one convention id: its conclusion (as concluded,
    if it was) and its termination (if any), in whichever order they came."""

    concluded: Convention | None = None
    terminated_at: date | None = None  # last day in force, as terminated

    def effective(self) -> Convention | None:
        """The convention as in force: the earlier of the conclusion's end and the
        termination (the same whichever was recorded first, and kept when a conclusion is
        sent again)."""
        if self.concluded is None:
            return None
        if self.terminated_at is None:  # as concluded (read for every contribution: no copy)
            return self.concluded
        ends = [d for d in (self.concluded.effet_au, self.terminated_at) if d is not None]
        return replace(self.concluded, effet_au=min(ends, default=None))


class _Conventions(Mapping[str, Convention]):
    """The concluded conventions by id, as in force (a read-only view of the facts)."""

    def __init__(self, facts: MutableMapping[str, ConventionFacts]) -> None:
        self._facts = facts

    def __getitem__(self, convention_id: str) -> Convention:
        convention = self._facts[convention_id].effective()
        if convention is None:
            raise KeyError(convention_id)
        return convention

    def __iter__(self) -> Iterator[str]:
        return (cid for cid, f in self._facts.items() if f.concluded is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Registry:
    """Registry state, folded fact by fact. Read by the pure rules, written only by `apply`.

    Its four maps are given when it is built from state tables (the entries a batch
    loaded, see `services.domain.state`); a fold of the whole history leaves them
    plain dicts."""

    def __init__(
        self,
        organismes: MutableMapping[str, Organisme] | None = None,
        conventions: MutableMapping[str, ConventionFacts] | None = None,
        by_organisme: MutableMapping[str, list[str]] | None = None,
        affiliations: MutableMapping[str, list[Affiliation]] | None = None,
        affiliated: PairIndex | None = None,
    ) -> None:
        self.organismes: MutableMapping[str, Organisme] = {} if organismes is None else organismes
        self.convention_facts: MutableMapping[str, ConventionFacts] = (
            {} if conventions is None else conventions
        )
        self.by_organisme: MutableMapping[str, list[str]] = (
            {} if by_organisme is None else by_organisme
        )
        self.affiliations: MutableMapping[str, list[Affiliation]] = (
            {} if affiliations is None else affiliations
        )
        self.affiliated = PairIndex("affiliated") if affiliated is None else affiliated
        """Who was ever affiliated to which organism (organisme_id, nir): the people a fact
        about an organism may concern."""
        self.conventions: Mapping[str, Convention] = _Conventions(self.convention_facts)

    # -- reading -------------------------------------------------------------------------
    def affiliation_at(self, nir: str, jour: date) -> Affiliation | None:
        """The affiliation of `nir` in force on `jour`, if any."""
        history = self.affiliations.get(nir)
        if not history:
            return None
        index = bisect.bisect_right(
            history, (jour, 1 << 62), key=lambda a: (a.effet_du, a.sequence)
        )
        return history[index - 1] if index else None

    def affiliations_of(self, nir: str) -> tuple[Affiliation, ...]:
        """Every affiliation recorded for `nir`, by effective date."""
        return tuple(self.affiliations.get(nir) or ())

    def convention_for(
        self, organisme_id: str, objet: str, caisse_de_base: str, jour: date
    ) -> Convention | None:
        """The organism's convention covering (objet, caisse, jour): the earliest in force,
        then the smallest id, so the choice never depends on arrival order."""
        candidates = [
            c
            for cid in self.by_organisme.get(organisme_id) or ()
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
        convention = concluded_of(p)
        cid = convention.convention_id
        facts = self.convention_facts.get(cid) or ConventionFacts()
        previous = facts.concluded
        if previous is not None:
            self.by_organisme[previous.organisme_id].remove(cid)
        self.convention_facts[cid] = replace(facts, concluded=convention)
        self.by_organisme.setdefault(convention.organisme_id, []).append(cid)

    def _terminate(self, convention_id: str, effet_au: date) -> None:
        facts = self.convention_facts.get(convention_id) or ConventionFacts()
        # a later termination corrects an earlier one
        self.convention_facts[convention_id] = replace(facts, terminated_at=effet_au)

    def _affiliate(self, p: dict[str, Any]) -> None:
        history = self.affiliations.setdefault(p["nir"], [])
        affiliation = Affiliation(
            nir=p["nir"],
            organisme_id=p["organisme_id"],
            mode=p["mode"],
            effet_du=date.fromisoformat(p["effet_du"]),
            # order of recording among this person's affiliations: only theirs are compared
            sequence=1 + max((a.sequence for a in history), default=0),
        )
        bisect.insort(history, affiliation, key=lambda a: (a.effet_du, a.sequence))
        self.affiliated.add(affiliation.organisme_id, affiliation.nir)

    def organisms_concerned(self, event_type: str, payload: Any) -> tuple[str, ...]:
        """The organisms whose affiliated people a new fact may concern, as the registry
        stands before it: the organism declared; the convention's organism, and the one it
        had before when a conclusion is sent again. An affiliation concerns its person only.
        A fact that changes nothing the rules read (an organism declared again with the same
        form, a convention sent again as it was, the same termination) concerns nobody: an
        upstream that re-sends its registry makes no work proportional to its population."""
        p = payload if isinstance(payload, Mapping) else payload.model_dump(mode="json")
        if event_type == "OrganismeDeclare":
            known = self.organismes.get(p["organisme_id"])
            if known is not None and known.forme_juridique == p["forme_juridique"]:
                return ()
            return (p["organisme_id"],)
        if event_type not in ("ConventionConclue", "ConventionResiliee"):
            return ()
        facts = self.convention_facts.get(p["convention_id"]) or ConventionFacts()
        if event_type == "ConventionResiliee":
            if facts.terminated_at == date.fromisoformat(p["effet_au"]):
                return ()
            found = []
        else:
            if facts.concluded == concluded_of(p):
                return ()
            found = [p["organisme_id"]]
        if facts.concluded is not None:
            found.append(facts.concluded.organisme_id)
        return tuple(sorted(set(found)))


def concluded_of(p: Mapping[str, Any]) -> Convention:
    """A `ConventionConclue` payload (JSON) as the convention it concludes (also how the
    decision state keeps a convention)."""
    effet_au = p.get("effet_au")
    return Convention(
        convention_id=p["convention_id"],
        organisme_id=p["organisme_id"],
        objet=p["objet"],
        caisses_de_base=frozenset(p["caisses_de_base"]),
        effet_du=date.fromisoformat(p["effet_du"]),
        effet_au=date.fromisoformat(effet_au) if effet_au else None,
    )
