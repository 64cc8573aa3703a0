"""What both services share in deciding: inputs, the store view they fold, and emitting.

A service's processor is deterministic: given its view of the store (a fold of every event
before) and one input, it emits the input and the decisions it causes, folding each into the
view as it goes. The live handler and `mandat replay` run the very same code, which is what
makes a recorded decision reproducible byte for byte.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, Self
from uuid import UUID

from contracts.envelope import InboundEnvelope
from contracts.inbound import InboundPayload
from services.domain.kernel.parking import Parking
from services.domain.kernel.records import NewEvent, StoredEvent
from services.domain.kernel.statekinds import (
    AFFILIATED,
    AFFILIATIONS,
    PARKED,
    PARKED_KIND,
    REGISTRY_KINDS,
    SUBJECTS_OF,
    field_of,
    registry_demand,
    registry_more,
)
from services.domain.kernel.subjects import Subject, SubjectState
from services.domain.kernel.tasks import (
    OPEN,
    REVISION_SET_ASIDE,
    REVISION_STEP,
    REVISIONS_OPENED,
    TASK_KIND,
    TASKS,
    EtapeDeRevision,
    RevisionTask,
    Starts,
)
from services.domain.registry import REGISTRY_EVENT_TYPES, Registry
from services.domain.state import (
    Change,
    Demand,
    Kind,
    LoadedMap,
    LoadedState,
    PairIndex,
    Row,
    changes_of,
    pair_entry,
)

DECISION_IDS = uuid.UUID("5f0b7a52-1b9e-4f3e-9d8e-4c611200a1f2")
"""Namespace of decision ids: uuid5(namespace, "<trigger event id>/<n>")."""

REJECTION = "MessageRejete"
"""Event type of a contract breach kept in the store (and relayed to the rejection topic)."""


def decision_id(trigger: UUID, n: int, service: str) -> UUID:
    """The id of the n-th event `service` emitted while processing input `trigger`:
    deterministic (a re-run of the same input cannot mint a second decision) and unique
    across services (both decide on the same registry facts)."""
    return uuid.uuid5(DECISION_IDS, f"{service}/{trigger}/{n}")


def rejection_id(
    service: str,
    origin: str,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
) -> UUID:
    """The id of `service`'s rejection of one record: derived from where it came from
    (`origin`: topic, partition, offset and broker timestamp, or the rejection it re-drives)
    and from every byte it carried, so a redelivery of the same record maps to the same id
    while a new record at a reused offset (a topic recreated) cannot collide with it."""
    digest = hashlib.sha256()
    for part in (origin.encode(), key, value, *(p for h in headers for p in (h[0].encode(), h[1]))):
        if part is None:
            digest.update(b"\xff")  # null, distinct from any length prefix
        else:
            digest.update(len(part).to_bytes(8, "big") + part)
    return uuid.uuid5(DECISION_IDS, f"{service}/reject/{digest.hexdigest()}")


@dataclass(frozen=True, slots=True)
class Input:
    """A valid inbound event as processors see it, from Kafka or from the store."""

    event_id: UUID
    event_type: str
    payload: InboundPayload | EtapeDeRevision  # the contract's payload model (or a step's)
    metadata: dict[str, Any]

    @property
    def correlation_id(self) -> str:
        return str(self.metadata.get("correlation_id") or self.event_id)

    def content(self) -> tuple[Any, ...]:
        """What makes two inputs under one event id the same input: its type, payload (as
        stored) and envelope, not where it came from."""
        return input_content(self.event_type, self.payload.model_dump(mode="json"), self.metadata)


_ENVELOPE_KEYS = ("correlation_id", "causation_id", "source", "occurred_at", "schema_version")


def envelope_metadata(event: InboundEnvelope) -> dict[str, Any]:
    """What an input keeps of its envelope beside its payload (the fields that make two
    inputs under one event id the same input, see `Input.content`)."""
    return {
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "source": event.source,
        "occurred_at": event.occurred_at.isoformat(),
        "schema_version": event.schema_version,
    }


def input_content(event_type: str, payload: Any, metadata: Mapping[str, Any]) -> tuple[Any, ...]:
    """See `Input.content`; also computed from a stored input's columns."""
    return (event_type, payload, tuple(metadata.get(k) for k in _ENVELOPE_KEYS))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the rules refuse an input: the field at fault (``payload.<name>``, as in a
    contract breach) and the reason, which names no personal value."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(slots=True)
class Outcome:
    """What processing one input gave: events to append, or why it was refused."""

    events: list[tuple[str, int, NewEvent]] = field(default_factory=list)  # stream, version
    refused: Refusal | None = None  # a business-level breach (e.g. same id, other content)
    duplicate: bool = False  # same content under a new event id: nothing to do


class Processor(Protocol):
    """A service's decision procedure over its view."""

    revisions_from: int  # the store position from which registry facts revise decisions
    steps_from: int  # ... and revise an organism's people in steps (`kernel.tasks.Starts`)

    def starting(self, starts: Starts) -> None:
        """Decide as the store says from where (revisions, steps, a shard's ids)."""
        ...

    @property
    def view(self) -> ServiceView: ...

    @property
    def service(self) -> str: ...

    def process(self, message: Input) -> Outcome: ...

    def next_step(self, limit: int) -> Input | None:
        """The next step of the oldest open revision task, if any (`kernel.tasks`)."""
        ...


def fold_stored(view: ServiceView, event: StoredEvent) -> None:
    """Fold an event read back from the store into a view."""
    view.position = event.position
    view.apply(
        event.stream_id, str(event.event_id), event.event_type, event.payload, event.metadata
    )


class Emitter:
    """Emits the events caused by one trigger input, folding each into the view at once (so
    the next decision of the same cascade sees it)."""

    def __init__(
        self,
        view: ServiceView,
        trigger: UUID,
        service: str,
        ids: Callable[[UUID, int, str], UUID] = decision_id,
        space: str | None = None,
    ) -> None:
        self.view = view
        self.trigger = trigger
        self.service = service
        self.ids = ids
        self.space = space or service  # the namespace its decisions' ids are minted in
        self.outcome = Outcome()

    def _emit(self, stream_id: str, event: NewEvent) -> None:
        self.outcome.events.append((stream_id, self.view.version(stream_id) + 1, event))
        self.view.position += 1  # the position it will take: appended next, in this order
        self.view.apply(
            stream_id, str(event.event_id), event.event_type, event.payload, event.metadata
        )

    def input(self, stream_id: str, message: Input) -> None:
        """Record the input itself (normalised payload: what the contract kept of it)."""
        payload = message.payload.model_dump(mode="json")
        self._emit(
            stream_id, NewEvent(message.event_id, message.event_type, payload, message.metadata)
        )

    def decision(
        self,
        stream_id: str,
        event_type: str,
        payload: dict[str, Any],
        cause: Input | UUID,
        correlation_id: str,
    ) -> None:
        """Record a decision caused by `cause` (the trigger itself, or a parked input)."""
        cause_id = cause.event_id if isinstance(cause, Input) else cause
        metadata = {
            "causation_id": str(cause_id),
            "correlation_id": correlation_id,
            "service": self.service,
        }
        if cause_id != self.trigger:
            metadata["decided_on"] = str(self.trigger)  # a parked input, decided later
        event_id = self.ids(self.trigger, len(self.outcome.events), self.space)
        self._emit(stream_id, NewEvent(event_id, event_type, payload, metadata))


@dataclass(slots=True)
class ServiceView:
    """What every service's view folds: its position, its streams' versions, the registry as
    recorded, and the inputs waiting for a decision. A service folds the rest (`fold`).

    Built empty, it folds a whole history (replay). Built `from_state`, it holds the entries
    one batch loaded from the state tables, and `changes` says what to write back."""

    OWN_KINDS: ClassVar[Mapping[str, Kind[Any]]] = {}
    """The service's own state entries: attribute of the view -> how they are kept."""
    SUBJECT: ClassVar[Subject]
    """What the service decides on (a contribution, a benefit)."""

    position: int = 0
    versions: MutableMapping[str, int] = field(default_factory=dict)
    registry: Registry = field(default_factory=Registry)
    parking: Parking = field(default_factory=Parking)
    subjects: PairIndex = field(default_factory=lambda: PairIndex(SUBJECTS_OF))
    """The subjects (contributions, benefits) recorded for each NIR: what a registry fact
    about that person, or about an organism they were affiliated to, may revise."""
    tasks: MutableMapping[str, RevisionTask] = field(default_factory=dict)
    """The revision tasks open, by the id of the fact that opened them (`kernel.tasks`)."""

    def version(self, stream_id: str) -> int:
        return self.versions.get(stream_id, 0)

    def apply(
        self,
        stream_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        metadata: dict[str, Any],
    ) -> None:
        """Fold one event (input, registry fact, decision or rejection)."""
        self.versions[stream_id] = self.versions.get(stream_id, 0) + 1
        if event_type in REGISTRY_EVENT_TYPES:
            self.registry.apply(event_type, payload)
        elif event_type == REVISIONS_OPENED:
            correlation = str(metadata.get("correlation_id") or payload["fait_id"])
            organisms = list(payload["organismes"])
            task = RevisionTask(payload["fait_id"], organisms, correlation, self.position)
            self.tasks[task.fact_id] = task
        elif event_type == REVISION_SET_ASIDE:
            states: MutableMapping[str, SubjectState] = getattr(self, self.SUBJECT.attribute)
            states[payload[self.SUBJECT.field]].aside = payload["fait_id"]
        elif event_type == REVISION_STEP:
            task = self.tasks[payload["fait_id"]]  # (read for a change: written back)
            if task.advance(payload):
                del self.tasks[task.fact_id]
        else:
            self.fold(event_id, event_type, payload, metadata)

    def fold(
        self, event_id: str, event_type: str, payload: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        """Fold one of the service's own events (inputs, decisions, rejections)."""
        raise NotImplementedError

    # -- state by key ----------------------------------------------------------------------
    @classmethod
    def from_state(cls, state: LoadedState) -> Self:
        """A view of what one batch loaded (see `services.domain.state`)."""
        view = cls()
        if not state.folding:  # folding stored events appends nothing: no version is read
            view.versions = LoadedMap("stream", state.versions, state.demand.streams)
        view.registry = registry_of(state)
        view.subjects = state.pair_index(SUBJECTS_OF)
        undecided = state.loaded_map(PARKED_KIND)
        view.parking = Parking(undecided, _queues(state))
        tasks = state.rows.get(TASKS, {})  # loaded whole (under their one tag): complete
        view.tasks = LoadedMap(
            TASKS, {k: TASK_KIND.decode(e) for k, e in tasks.items()}, (), prefixes=("",)
        )
        for attribute, kind in cls.OWN_KINDS.items():
            setattr(view, attribute, state.loaded_map(kind))
        return view

    def changes(self, state: LoadedState) -> list[Change]:
        """The entries this view changed since `from_state(state)`, to write back."""
        registry = self.registry
        kept: list[tuple[Kind[Any], Any]] = [
            *zip(
                REGISTRY_KINDS,
                (
                    registry.organismes,
                    registry.convention_facts,
                    registry.by_organisme,
                    registry.affiliations,
                ),
                strict=True,
            ),
            (PARKED_KIND, self.parking.undecided),
            (TASK_KIND, self.tasks),
            *((kind, getattr(self, attribute)) for attribute, kind in self.OWN_KINDS.items()),
        ]
        found: list[Change] = []
        for kind, values in kept:
            if not isinstance(values, LoadedMap):
                raise TypeError("only a view built from_state has changes to write back")
            found.extend(changes_of(kind, values, state.rows.get(kind.name, {})))
        for index in (registry.affiliated, self.subjects):
            known = state.rows.get(index.kind, {})
            for first, second in index.added:
                if first + second not in known:
                    found.append(Change(index.kind, first + second, pair_entry(first, second)))
        return found

    @classmethod
    def demand_of(
        cls, demand: Demand, event_type: str, payload: Any, causation: str | None = None
    ) -> None:
        """Add what deciding an input (or folding an event) that names these ids reads; a
        decision also settles the input that caused it (`causation`)."""
        registry_demand(demand, event_type, payload)
        cls.own_demand(demand, event_type, payload)
        demand.tag(TASKS, OPEN)  # the open revision tasks: few, and any input may need them
        if causation is not None:
            demand.key(PARKED, causation)

    @classmethod
    def own_demand(cls, demand: Demand, event_type: str, payload: Any) -> None:
        """The service's own entries and streams an input or event names: its subject, and
        what `more_demand` adds."""
        subject_id = field_of(payload, cls.SUBJECT.field)
        if isinstance(subject_id, str):
            cls.subject_demand(demand, subject_id)
        cls.more_demand(demand, payload)

    @classmethod
    def more_demand(cls, demand: Demand, payload: Any) -> None:
        """Entries of the service's own an input names beside its subject."""

    @classmethod
    def subject_stream(cls, subject_id: str) -> str:
        """The stream of a subject's input and decisions."""
        return cls.SUBJECT.stream(subject_id)

    def subject(self, subject_id: str) -> SubjectState | None:
        """A subject's state, if recorded."""
        states: Mapping[str, SubjectState] = getattr(self, self.SUBJECT.attribute)
        return states.get(subject_id)

    @classmethod
    def subject_demand(cls, demand: Demand, subject_id: str) -> None:
        """What deciding on one of the service's subjects reads: its entry and stream."""
        demand.key(cls.SUBJECT.kind, subject_id)
        demand.stream(cls.subject_stream(subject_id))

    def subjects_of(self, people: Iterable[str]) -> list[str]:
        """The subjects of these people, by subject id: what a fact about them may revise."""
        return sorted({s for person in people for s in self.subjects.seconds(person)})

    @classmethod
    def more(cls, row: Row, demand: Demand) -> None:
        """Add what a loaded entry leads to (a parked input: its queue and what deciding it
        reads)."""
        registry_more(row, demand)
        if row.kind == SUBJECTS_OF:  # a subject to revise: the person's registry, its entry
            nir, subject_id = row.entry.doc
            demand.key(AFFILIATIONS, nir)
            cls.subject_demand(demand, subject_id)
        elif row.kind == PARKED:
            if row.entry.tag is not None:
                demand.tag(PARKED, row.entry.tag)
            doc = row.entry.doc
            assert isinstance(doc, dict)
            cls.demand_of(demand, doc["event_type"], doc["payload"])


def registry_of(state: LoadedState) -> Registry:
    """The registry as one batch loaded it."""
    organismes, conventions, by_organisme, affiliations = (
        state.loaded_map(kind) for kind in REGISTRY_KINDS
    )
    return Registry(
        organismes, conventions, by_organisme, affiliations, state.pair_index(AFFILIATED)
    )


def _queues(state: LoadedState) -> LoadedMap[list[str]]:
    """The parked inputs' queues, rebuilt from their entries: each in the order its inputs
    were parked, the queues in the order they were opened (as a whole fold keeps them)."""
    queues: dict[str, list[tuple[int, str]]] = {}
    opened: dict[str, int] = {}
    for event_id, entry in state.rows.get(PARKED, {}).items():
        if entry.tag is not None:
            queues.setdefault(entry.tag, []).append((entry.ordinal, event_id))
            assert isinstance(entry.doc, dict)
            opened[entry.tag] = entry.doc["since"]
    return LoadedMap(
        "queue",
        {
            tag: [event_id for _, event_id in sorted(queues[tag])]
            for tag in sorted(queues, key=opened.__getitem__)
        },
        state.demand.tags.get(PARKED, ()),
        state.demand.prefixes.get(PARKED, ()),
    )
