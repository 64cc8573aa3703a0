"""Deciding over the decision state loaded by key gives what deciding over the whole fold
gives (services/adapters/runtime/state.py, services/domain/state.py).

Generated histories (registry facts and inputs about a handful of people, organisms,
conventions and contributions, in any order, cut into batches anywhere) are decided by the
batch handler on the in-memory store, which loads per batch only what the inputs name.
Then every recorded input is decided again by a processor that folded the whole history
before it (what `mandat replay verify` does): it must give the very events recorded. And
the state kept batch by batch must be the state folded again from the events.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import (
    affiliation,
    convention,
    cotisation,
    envelope,
    key_of,
    nir,
    organisme,
    paiement,
    prestation,
)

from services.adapters.eventstore.memory import MemoryEventStore, MemoryTransaction
from services.adapters.runtime.handler import BatchHandler
from services.adapters.runtime.reviser import Reviser
from services.domain.catalog import (
    BENEFITS,
    COLLECTION,
    HEAD_MODELS,
    ServiceDescription,
)
from services.domain.collection.view import CollectionView
from services.domain.kernel.decider import RegistryAwareProcessor
from services.domain.kernel.processing import REJECTION, Input, fold_stored
from services.domain.kernel.records import NewEvent
from services.domain.kernel.tasks import TASK_EVENT_TYPES, Starts
from services.domain.state import Demand, Entry, LoadedMap, NotLoaded, Row
from services.tools.audit.feed import FakeRecord

pytestmark = pytest.mark.unit

PEOPLE = [nir(n) for n in range(3)]
ORGANISMS = ["OC-A", "OC-B", "OC-C"]
DAYS = ["2016-06-01", "2017-01-01", "2017-04-01", "2017-07-01", "2017-10-01", "2018-01-01"]
day = st.sampled_from(DAYS)
person = st.sampled_from(PEOPLE)
organism = st.sampled_from(ORGANISMS)

registry_fact = st.one_of(
    st.builds(
        organisme,
        organism,
        st.sampled_from(["MUTUELLE", "SOCIETE_ASSURANCE", "ORGANISME_SECURITE_SOCIALE"]),
    ),
    st.builds(
        convention,
        st.sampled_from(["C1", "C2"]),
        organism,
        st.sampled_from(["ENCAISSEMENT_CONTENTIEUX_COTISATIONS", "VERSEMENT_PRESTATIONS_ESPECES"]),
        st.sampled_from([("PL-IDF",), ("PL-ARA",), ("PL-IDF", "PL-ARA")]),
        day,
        st.none() | day,
    ),
    st.builds(
        lambda cid, au: ("ConventionResiliee", {"convention_id": cid, "effet_au": au}),
        st.sampled_from(["C1", "C2"]),
        day,
    ),
    st.builds(affiliation, person, organism, day),
)
contribution_id = st.sampled_from(["K1", "K2", "K3"])
collection_input = st.one_of(
    st.builds(
        lambda cid, n, debut, categorie: cotisation(cid, n, debut=debut, categorie=categorie),
        contribution_id,
        person,
        st.sampled_from(DAYS[1:]),
        st.sampled_from(["PROFESSION_LIBERALE", "ARTISAN"]),
    ),
    st.builds(
        paiement,
        st.sampled_from(["P1", "P2", "P3"]),
        contribution_id,
        person,
        st.integers(1, 300_000),
    ),
    st.builds(
        lambda cid, n: (
            "CotisationImpayee",
            {
                "cotisation_id": cid,
                "nir": n,
                "constatee_le": "2017-06-01",
                "restant_du_cents": 1000,
            },
        ),
        contribution_id,
        person,
    ),
)
benefits_input = st.builds(
    lambda pid, n, jour: prestation(pid, n, jour=jour),
    st.sampled_from(["B1", "B2", "B3"]),
    person,
    st.sampled_from(DAYS),
)


def _records(
    service: ServiceDescription, facts: list[tuple[str, dict[str, Any]]]
) -> list[FakeRecord]:
    by_type = {t: topic for topic, types in service.inputs.items() for t in types}
    return [
        FakeRecord(by_type[kind], 0, offset, key_of(payload), envelope(kind, payload))
        for offset, (kind, payload) in enumerate(facts)
    ]


async def _decide_in_batches(
    service: ServiceDescription,
    facts: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    revisions_from: int | None = None,
    steps: list[int] | None = None,
    people_per_step: int = 1,
) -> MemoryEventStore:
    """Decide `facts` in batches of the sizes `cuts` gives; after the n-th batch, record
    `steps[n]` steps of the open revision tasks (none when not given), and at the end every
    step left, as the service's reviser does between batches."""
    store = MemoryEventStore()
    store.revisions_start = revisions_from  # None: from the store's first position
    handler = BatchHandler(
        store, lambda view=None: service.new_processor(view=view), dict(service.inputs)
    )
    reviser = Reviser(handler, limit=people_per_step)
    await handler.catch_up()
    records = _records(service, facts)
    start = 0
    for n, size in enumerate([*cuts, len(records)]):
        if start < len(records):
            await handler.handle(records[start : start + size])
            start += size
        for _ in range(steps[n] if steps and n < len(steps) else 0):
            await reviser.step()
    while await reviser.step() is not None:
        pass
    return store


def _assert_replays(service: ServiceDescription, store: MemoryEventStore) -> None:
    """Each recorded input, decided again over the fold of everything before it, gives the
    events recorded after it."""
    processor = service.new_processor()
    assert store.revisions_start is not None
    # where revisions start, and a shard's own ids (none: a store in one piece)
    processor.starting(Starts(store.revisions_start, 1, *store.space))
    events, i = store.events, 0
    while i < len(events):
        event = events[i]
        if event.event_type == REJECTION:
            fold_stored(processor.view, event)
            i += 1
            continue
        model = HEAD_MODELS[event.event_type].model_validate(event.payload)
        processor.view.position = event.position - 1
        outcome = processor.process(Input(event.event_id, event.event_type, model, event.metadata))
        made = [
            (s, v, e.event_id, e.event_type, e.payload, e.metadata) for s, v, e in outcome.events
        ]
        recorded = [
            (r.stream_id, r.stream_version, r.event_id, r.event_type, r.payload, r.metadata)
            for r in events[i : i + len(made)]
        ]
        assert made and made == recorded
        i += len(made)


async def _assert_state_refolds(service: ServiceDescription, store: MemoryEventStore) -> None:
    again = MemoryEventStore()
    again.events, again.by_id, again.versions = store.events, store.by_id, store.versions
    handler = BatchHandler(again, lambda view=None: service.new_processor(view=view), {})
    assert await handler.catch_up() == len(store.events)
    assert again.state == store.state and again.state_at == store.state_at == len(store.events)


SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


async def _decides_as_the_whole_fold(
    service: ServiceDescription,
    facts: list[tuple[str, dict[str, Any]]],
    cuts: list[int],
    steps: list[int],
) -> None:
    store = await _decide_in_batches(service, facts, cuts, steps=steps)
    assert all(e.payload["kind"] == "contract" for e in store.events if e.event_type == REJECTION)
    _assert_replays(service, store)
    await _assert_state_refolds(service, store)
    _assert_nothing_left_to_revise(service, store)


def _assert_nothing_left_to_revise(service: ServiceDescription, store: MemoryEventStore) -> None:
    """Once every step is recorded, no decided subject would be revised on the registry as
    it stands: every fact that changed an outcome revised it (at once, in a step, or before
    an input about it), whatever the batches and the steps between them."""
    processor = cast(RegistryAwareProcessor[Any, Any], service.new_processor())
    for event in store.events:
        fold_stored(processor.view, event)
    assert not processor.view.tasks
    states = getattr(processor.view, processor.view.SUBJECT.attribute)
    for subject_id, state in states.items():
        if state.outcome is None or state.decision_id is None:
            continue
        rules = service.rule_sets[str(state.regles_version)]
        revision = processor.revision(state, uuid.UUID(state.decision_id), rules)
        assert revision is None, (subject_id, revision)


CUTS = st.lists(st.integers(1, 7), max_size=10)
STEPS = st.lists(st.integers(0, 2), max_size=10)  # steps recorded after each batch


@SETTINGS
@given(
    facts=st.lists(st.one_of(registry_fact, collection_input), max_size=30), cuts=CUTS, steps=STEPS
)
async def test_collection_decides_over_loaded_state_as_over_the_whole_fold(
    facts: list[tuple[str, dict[str, Any]]], cuts: list[int], steps: list[int]
) -> None:
    await _decides_as_the_whole_fold(COLLECTION, facts, cuts, steps)


@SETTINGS
@given(
    facts=st.lists(st.one_of(registry_fact, benefits_input), max_size=30), cuts=CUTS, steps=STEPS
)
async def test_benefits_decides_over_loaded_state_as_over_the_whole_fold(
    facts: list[tuple[str, dict[str, Any]]], cuts: list[int], steps: list[int]
) -> None:
    await _decides_as_the_whole_fold(BENEFITS, facts, cuts, steps)


@pytest.mark.parametrize(
    ("revisions_from", "order"),
    [(None, ["K1", "K2", "K3"]), (10**9, ["K1", "K3", "K2"])],
    ids=["by subject id", "recorded before revisions: queue by queue"],
)
async def test_a_fact_unblocks_parked_inputs_in_the_order_a_whole_fold_gives(
    revisions_from: int | None, order: list[str]
) -> None:
    """Two people wait for their affiliation to an organism not declared yet, parked in an
    interleaved order; declaring the organism decides them by subject id (domain.md) — in
    a store recorded before revisions, queue by queue as they were parked, as then — and
    the whole fold orders them the same, though each batch loads only what it names."""
    a, b = sorted(PEOPLE[:2], reverse=True)  # queues opened against the order of their keys
    facts = [
        affiliation(a, "OC-A"),
        affiliation(b, "OC-A"),
        cotisation("K1", a),
        cotisation("K2", b),
        cotisation("K3", a),
        organisme("OC-A"),
    ]
    store = await _decide_in_batches(COLLECTION, facts, [1, 1, 1, 1, 1, 1], revisions_from)
    decided = [
        e.payload["cotisation_id"] for e in store.events if e.event_type.startswith("Encaissement")
    ]
    assert decided == order
    _assert_replays(COLLECTION, store)


def test_reading_an_entry_nobody_loaded_is_an_error_not_an_absence() -> None:
    loaded = LoadedMap("contribution", {"K1": 1}, ["K1", "K2"], prefixes=["x/"])
    assert loaded.get("K2") is None and "K2" not in loaded and loaded.get("x/any") is None
    with pytest.raises(NotLoaded):
        loaded.get("K3")
    with pytest.raises(NotLoaded):
        _ = "K3" in loaded
    loaded["K3"] = 3  # written by the batch: known from then on
    assert loaded["K3"] == 3
    assert dict(loaded.changed()) == {"K3": 3}


# --- revisions, decided batch by batch over the loaded state ------------------------------

N = PEOPLE[0]
M, M2, C1, C2 = "OC-M", "OC-M2", "C1", "C2"


def _resiliation(cid: str, au: str) -> tuple[str, dict[str, Any]]:
    return "ConventionResiliee", {"convention_id": cid, "effet_au": au}


def _impaye(cid: str) -> tuple[str, dict[str, Any]]:
    payload = {"cotisation_id": cid, "nir": N, "constatee_le": "2017-11-01"}
    return "CotisationImpayee", payload | {"restant_du_cents": 1000}


START = [
    organisme(M),
    affiliation(N, M, "2016-01-01"),
    convention(C1, M, du="2017-01-01"),
    organisme(M2, "SOCIETE_ASSURANCE"),
    convention(C2, M2, du="2017-01-01"),
    cotisation("Q2", N, debut="2017-04-01"),
    cotisation("Q3", N, debut="2017-07-01"),
]


def _decisions(store: MemoryEventStore) -> list[tuple[str, dict[str, Any]]]:
    inputs = {"CotisationDue", "PaiementRecu", "CotisationImpayee", *HEAD_MODELS, *TASK_EVENT_TYPES}
    return [
        (e.event_type, e.payload)
        for e in store.events
        if e.event_type not in inputs and e.event_type != REJECTION
    ]


async def _run(facts: list[tuple[str, dict[str, Any]]], cuts: list[int]) -> MemoryEventStore:
    store = await _decide_in_batches(COLLECTION, facts, cuts)
    assert not any(e.event_type == REJECTION for e in store.events)
    _assert_replays(COLLECTION, store)
    await _assert_state_refolds(COLLECTION, store)
    return store


@pytest.mark.parametrize("cuts", [[100], [1] * 20, [3, 2, 4]])
async def test_a_termination_revises_what_it_uncovers_and_the_follow_ups_follow(
    cuts: list[int],
) -> None:
    """domain.md, revisions, example 1, in batches cut anywhere: C1 ends on 2017-06-30, so
    Q3 (from 2017-07-01) is no longer delegated; Q2 is unchanged; a later payment on Q3 is
    not imputed to M, and its unpaid notice is without object."""
    store = await _run(
        [*START, _resiliation(C1, "2017-06-30"), paiement("P1", "Q3", N, 100), _impaye("Q3")],
        cuts,
    )
    decided = _decisions(store)
    revisions = [p for t, p in decided if t == "EncaissementRevise"]
    [revision] = revisions
    assert revision["cotisation_id"] == "Q3"
    assert revision["avant"] == {
        "event_type": "EncaissementDelegue",
        "organisme_id": M,
        "convention_id": C1,
        "motif": None,
        "recouvreur": None,
    }
    assert revision["apres"]["motif"] == "AUCUNE_CONVENTION"
    assert revision["apres"]["recouvreur"] == "CAISSE_DE_BASE"
    q3 = [e for e in store.events if e.payload.get("cotisation_id") == "Q3"]
    [first] = [e for e in q3 if e.event_type == "EncaissementDelegue"]
    assert revision["decision_revisee_id"] == str(first.event_id)
    assert [t for t, p in decided if p.get("cotisation_id") == "Q3"][-2:] == [
        "PaiementNonImpute",
        "ContentieuxSansObjet",
    ]


async def test_a_backdated_affiliation_moves_the_money_already_held_and_the_next_payment() -> None:
    """domain.md, revisions, example 2: 300 € held by M, then N's affiliation to M2 from
    2017-01-01: the revision says M holds 30000 cents it owes; the next payment is held by
    M2, and the balance counts both payments."""
    store = await _run(
        [
            *START,
            paiement("P1", "Q3", N, 30000),
            affiliation(N, M2, "2017-01-01"),
            paiement("P2", "Q3", N, 5000),
        ],
        [100],
    )
    decided = _decisions(store)
    revisions = [p for t, p in decided if t == "EncaissementRevise"]
    assert [r["cotisation_id"] for r in revisions] == ["Q2", "Q3"]  # by subject id
    q3 = revisions[1]
    assert (q3["apres"]["organisme_id"], q3["apres"]["convention_id"]) == (M2, C2)
    assert (q3["deja_encaisse_cents"], q3["contentieux_transfere"]) == (30000, False)
    assert revisions[0]["deja_encaisse_cents"] == 0
    last = decided[-1]
    assert last[0] == "PaiementEncaissePourCompte" and last[1]["organisme_id"] == M2
    assert last[1]["solde_restant_cents"] == 195000 - 30000 - 5000


async def test_a_to_b_to_a_counts_each_tenure_once() -> None:
    """Revised to M2, then back to M (an affiliation of the same day, recorded later,
    wins): each revision counts only the payments of the tenure it ends."""
    store = await _run(
        [
            *START,
            paiement("P1", "Q3", N, 100),
            affiliation(N, M2, "2017-01-01"),
            paiement("P2", "Q3", N, 200),
            _impaye("Q3"),
            affiliation(N, M, "2017-01-01"),
        ],
        [2, 3, 1],
    )
    q3 = [
        p for t, p in _decisions(store) if t == "EncaissementRevise" and p["cotisation_id"] == "Q3"
    ]
    assert [(r["apres"]["organisme_id"], r["deja_encaisse_cents"]) for r in q3] == [
        (M2, 100),
        (M, 200),
    ]
    assert [r["contentieux_transfere"] for r in q3] == [False, True]
    assert q3[1]["decision_revisee_id"] != q3[0]["decision_revisee_id"]


async def test_facts_that_do_not_overrule_each_other_give_the_same_outcome_in_either_order() -> (
    None
):
    late = [_resiliation(C1, "2017-06-30"), affiliation(N, M2, "2017-08-01")]
    outcomes = []
    for facts in (late, late[::-1]):
        store = await _run([*START, *facts], [100])
        view = CollectionView()
        for event in store.events:
            fold_stored(view, event)
        outcomes.append(
            {cid: (s.organisme_id, s.outcome) for cid, s in sorted(view.contributions.items())}
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0]["Q3"][0] == None  # noqa: E711 -- neither M (ended) nor M2 (from August)


async def test_a_registry_fact_redelivered_revises_nothing_twice() -> None:
    records = _records(COLLECTION, [*START, _resiliation(C1, "2017-06-30")])
    store = MemoryEventStore()
    handler = BatchHandler(
        store, lambda view=None: COLLECTION.new_processor(view=view), dict(COLLECTION.inputs)
    )
    reviser = Reviser(handler)
    await handler.catch_up()
    await handler.handle(records)
    while await reviser.step() is not None:
        pass
    head = await store.head()
    report = await handler.handle(records[-1:])  # the same record, delivered again
    assert report.duplicates == 1 and await store.head() == head
    assert await reviser.step() is None  # its task is done: it opens none again
    assert sum(e.event_type == "EncaissementRevise" for e in store.events) == 1


async def test_a_revision_that_would_wait_for_an_organism_happens_when_it_is_declared() -> None:
    """N is affiliated from 2017-01-01 to M3, not declared yet: judging Q3 again would
    park, so its delegation to M stands; declaring M3 (which holds a convention) revises it."""
    store = await _run(
        [
            *START,
            convention("C3", "OC-M3", du="2017-01-01"),
            affiliation(N, "OC-M3", "2017-01-01"),
            organisme("OC-M3"),
        ],
        [1] * 20,
    )
    decided = _decisions(store)
    revisions = [p for t, p in decided if t == "EncaissementRevise"]
    assert [(r["cotisation_id"], r["apres"]["organisme_id"]) for r in revisions] == [
        ("Q2", "OC-M3"),
        ("Q3", "OC-M3"),
    ]
    [declared] = [
        e for e in store.events if e.payload.get("nom") and e.payload["organisme_id"] == "OC-M3"
    ]
    assert all(
        e.metadata["causation_id"] == str(declared.event_id)
        for e in store.events
        if e.event_type == "EncaissementRevise"
    )


class _CountingStore(MemoryEventStore):
    """Counts the decision state entries each transaction loads."""

    loaded: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.loaded = []

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        async with super().transaction() as tx:
            count = [0]
            load = tx.load_state

            async def counted(demand: Demand) -> list[Row]:
                rows = await load(demand)
                count[0] += len(rows)
                return rows

            tx.load_state = counted  # type: ignore[method-assign]
            yield tx
            self.loaded.append(count[0])


async def test_what_a_batch_loads_does_not_grow_with_the_organism_s_population() -> None:
    """The 200th person affiliated to an organism, and their contribution, load as little
    as the first: an affiliation concerns its person, not everyone affiliated before. A
    fact about the organism loads as little too: it opens a task, whose steps each load
    their span of people."""
    store = _CountingStore()
    handler = BatchHandler(
        store, lambda view=None: COLLECTION.new_processor(view=view), dict(COLLECTION.inputs)
    )
    await handler.catch_up()
    await handler.handle(_records(COLLECTION, [organisme(M), convention(C1, M)]))
    for n in range(200):
        person = nir(100 + n)
        facts = [affiliation(person, M), cotisation(f"K{n}", person, debut="2017-07-01")]
        await handler.handle(_records(COLLECTION, facts))
    first, last = store.loaded[2], store.loaded[-1]
    assert last <= first + 2, (first, last)
    # the registry sent again as it was changes nothing: it reads no one's subjects
    await handler.handle(_records(COLLECTION, [organisme(M), convention(C1, M)]))
    assert store.loaded[-1] <= first + 2, store.loaded[-1]
    # a change of form does concern everyone affiliated (200 people and their subjects):
    # the fact's batch opens a task, and each step loads its 50 people's entries
    await handler.handle(_records(COLLECTION, [organisme(M, "ORGANISME_SECURITE_SOCIALE")]))
    assert store.loaded[-1] <= first + 4, store.loaded[-1]
    assert sum(e.event_type == "RevisionsOuvertes" for e in store.events) == 1
    reviser, steps = Reviser(handler, limit=50), 0
    while await reviser.step() is not None:
        steps += 1
    assert steps == 5  # 4 spans of 50 people, then the end of the organism's people
    spans = store.loaded[-6:-1]  # (the last transaction found no task open)
    assert all(n <= 50 * 4 + 10 for n in spans) and sum(spans) >= 200 * 3, spans


async def test_a_change_of_convention_alone_keeps_the_organism_s_tenure() -> None:
    """M collects under C0, then under C1, concluded later from an earlier date (a revision
    with 0 / false: it keeps collecting); when N moves to M2, M owes all it holds, under
    both conventions, and had the litigation."""
    store = await _run(
        [
            organisme(M),
            affiliation(N, M, "2016-01-01"),
            convention("C0", M, du="2017-03-01"),
            organisme(M2, "SOCIETE_ASSURANCE"),
            convention(C2, M2, du="2017-01-01"),
            cotisation("Q3", N, debut="2017-07-01"),
            paiement("P1", "Q3", N, 10_000),
            _impaye("Q3"),
            convention(C1, M, du="2017-01-01"),
            paiement("P2", "Q3", N, 5_000),
            affiliation(N, M2, "2017-01-01"),
        ],
        [3, 3, 3, 3],
    )
    revisions = [p for t, p in _decisions(store) if t == "EncaissementRevise"]
    assert [(r["avant"]["convention_id"], r["apres"]["convention_id"]) for r in revisions] == [
        ("C0", C1),
        (C1, C2),
    ]
    assert [(r["deja_encaisse_cents"], r["contentieux_transfere"]) for r in revisions] == [
        (0, False),
        (15_000, True),
    ]


async def test_a_state_that_is_not_the_fold_of_the_store_is_folded_again() -> None:
    """The state of another history (a store cut and written again past the state's
    position, a restore): its position's event is not the one it was folded up to, so the
    handler folds the store again instead of deciding on it."""
    folded = await _run([*START, _resiliation(C1, "2017-06-30")], [100])
    more = [paiement(f"P{n}", "Q3", N, 100) for n in range(6)]
    other = await _run([*START[:5], *START[4:], affiliation(N, M2, "2017-01-01"), *more], [100])
    assert len(other.events) > folded.state_at
    other.state, other.state_at, other.state_hash = (
        folded.state,
        folded.state_at,
        folded.state_hash,
    )
    again = MemoryEventStore()
    again.events, again.by_id, again.versions = other.events, other.by_id, other.versions
    await BatchHandler(again, lambda view=None: COLLECTION.new_processor(view=view), {}).catch_up()
    handler = BatchHandler(other, lambda view=None: COLLECTION.new_processor(view=view), {})
    await handler.catch_up()
    assert other.state == again.state and other.state_at == len(other.events)


async def test_a_state_written_by_another_version_of_the_fold_is_folded_again() -> None:
    store = await _run([*START, paiement("P1", "Q3", N, 100)], [100])
    expected = dict(store.state)
    key = ("contribution", "Q3")
    doc = dict(store.state[key].doc)
    doc["held_cents"] = 0  # what an older fold might have kept
    store.state[key] = Entry(doc, store.state[key].tag, store.state[key].ordinal)
    store.state_version = 0
    handler = BatchHandler(store, lambda view=None: COLLECTION.new_processor(view=view), {})
    await handler.catch_up()
    assert store.state == expected


async def test_the_revisions_start_is_known_only_once_the_batch_that_records_it_commits() -> None:
    """A handler not caught up first records where revisions start in its first batch; that
    batch fails once (the database goes away): the retry records it again, and the
    revisions it commits are the ones replay finds."""
    store = MemoryEventStore()
    failures = [ConnectionResetError("the database went away")]
    load = store.transaction

    @contextlib.asynccontextmanager
    async def flaky() -> AsyncIterator[MemoryTransaction]:
        async with load() as tx:
            yield tx
            if failures:
                raise failures.pop()

    store.transaction = flaky  # type: ignore[method-assign]
    handler = BatchHandler(
        store,
        lambda view=None: COLLECTION.new_processor(view=view),
        dict(COLLECTION.inputs),
        backoff_max=0.01,
    )
    await handler.handle(_records(COLLECTION, [*START, _resiliation(C1, "2017-06-30")]))
    assert handler.starts == Starts(1, 1) and store.revisions_start == store.steps_start == 1
    while await Reviser(handler).step() is not None:
        pass
    assert any(e.event_type == "EncaissementRevise" for e in store.events)
    _assert_replays(COLLECTION, store)


async def test_a_store_the_state_cannot_fold_stalls_the_batch_and_rejects_no_record() -> None:
    """An event appended without the state that the fold cannot take (here a decision of an
    input the store never held) says something about the store, not about the records in
    hand: the batch is retried and reported stalled; nothing is decided on a state that is
    not the fold of the store, and no valid record is rejected."""
    store = MemoryEventStore()
    handler = BatchHandler(
        store,
        lambda view=None: COLLECTION.new_processor(view=view),
        dict(COLLECTION.inputs),
        backoff_max=0.01,
    )
    await handler.catch_up()
    async with store.transaction() as tx:  # written by no service: the state is behind it
        stray = {"nir": N, "sujet_id": "K9", "motif": "AFFILIATION_INCONNUE"}
        metadata = {"causation_id": "6f1f7a1e-0000-4000-8000-000000000000"}
        tx.append_at(
            "cotisation-K9", 1, NewEvent(uuid.uuid4(), "DecisionEnAttente", stray, metadata)
        )
    task = asyncio.create_task(handler.handle(_records(COLLECTION, [organisme(M)])))
    await asyncio.sleep(0.5)
    assert not task.done() and handler.stalled_seconds() > 0.3
    assert handler.stall_reason is not None and "StateBehind" in handler.stall_reason
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert [e.event_type for e in store.events] == ["DecisionEnAttente"]  # nothing rejected
