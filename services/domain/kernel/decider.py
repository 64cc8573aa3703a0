"""What both services' processors share: registry facts are recorded, and the inputs they
unblock are decided; each service says how to take its own inputs and its parked ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import Emitter, Input, Outcome, ServiceView, decision_id
from services.domain.kernel.streams import registry_stream
from services.domain.registry import REGISTRY_EVENT_TYPES

ViewT = TypeVar("ViewT", bound=ServiceView)
RulesT = TypeVar("RulesT")


class RegistryAwareProcessor(Generic[ViewT, RulesT]):
    """A processor over a view that folds the registry and parks inputs waiting for it."""

    service: ClassVar[str]

    def __init__(
        self, view: ViewT, rules: RulesT, ids: Callable[[UUID, int, str], UUID] = decision_id
    ) -> None:
        self.view = view
        self.rules = rules
        self.ids = ids
        self.revisions_from = 1
        """The store position from which registry facts revise earlier decisions: a store
        recorded before revisions existed is not revised by its replay (set from the store)."""

    def process(self, message: Input) -> Outcome:
        """The events one input causes (or why it is refused). A registry fact: first the
        parked inputs it unblocks, then the decisions it revises, each by subject id."""
        position = self.view.position + 1  # the position the input takes
        emitter = Emitter(self.view, message.event_id, self.service, self.ids)
        kind, payload = message.event_type, message.payload
        if kind not in REGISTRY_EVENT_TYPES:
            return self.process_input(emitter, message)
        organisms = self.view.registry.organisms_concerned(kind, payload)  # before the fact
        emitter.input(registry_stream(kind, payload), message)
        for waiting_id, waiting in list(self.view.parking.unblocked_by(kind, payload)):
            self.decide_parked(emitter, UUID(waiting_id), waiting)
        if position >= self.revisions_from:
            nir = str(getattr(payload, "nir", ""))
            for subject_id in self.view.revision_subjects(kind, organisms, nir):
                self.revise(emitter, subject_id, message)
        return emitter.outcome

    def revise(self, emitter: Emitter, subject_id: str, fact: Input) -> None:
        """Record the revision of a decided subject if the registry now gives another
        outcome (nothing when it gives the same, was not decided, or would park)."""
        raise NotImplementedError

    def process_input(self, emitter: Emitter, message: Input) -> Outcome:
        """Record and decide one of the service's own inputs."""
        raise NotImplementedError

    def decide_parked(self, emitter: Emitter, event_id: UUID, waiting: Waiting) -> None:
        """Try again to decide an input parked for a registry fact (emit nothing if it must
        still wait: its DecisionEnAttente is on record)."""
        raise NotImplementedError
