"""What both services' processors share: registry facts are recorded, and the inputs they
unblock are decided; each service says how to take its own inputs and its parked ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Generic, TypeVar
from uuid import UUID

from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import Emitter, Input, Outcome, View, decision_id
from services.domain.kernel.streams import registry_stream
from services.domain.registry import REGISTRY_EVENT_TYPES

ViewT = TypeVar("ViewT", bound=View)
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

    def process(self, message: Input) -> Outcome:
        """The events one input causes (or why it is refused)."""
        emitter = Emitter(self.view, message.event_id, self.service, self.ids)
        kind, payload = message.event_type, message.payload
        if kind not in REGISTRY_EVENT_TYPES:
            return self.process_input(emitter, message)
        emitter.input(registry_stream(kind, payload), message)
        for waiting_id, waiting in list(self.view.parking.unblocked_by(kind, payload)):
            self.decide_parked(emitter, UUID(waiting_id), waiting)
        return emitter.outcome

    def process_input(self, emitter: Emitter, message: Input) -> Outcome:
        """Record and decide one of the service's own inputs."""
        raise NotImplementedError

    def decide_parked(self, emitter: Emitter, event_id: UUID, waiting: Waiting) -> None:
        """Try again to decide an input parked for a registry fact (emit nothing if it must
        still wait: its DecisionEnAttente is on record)."""
        raise NotImplementedError
