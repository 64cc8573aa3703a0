"""What both services' processors share: registry facts are recorded, and the inputs they
unblock are decided; each service says how to take its own inputs and its parked ones."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast
from uuid import UUID

from contracts.outbound import Decision
from services.domain.kernel.parking import Waiting
from services.domain.kernel.processing import (
    Emitter,
    Input,
    Outcome,
    Refusal,
    ServiceView,
    decision_id,
)
from services.domain.kernel.streams import registry_stream
from services.domain.kernel.tasks import (
    REVISION_SET_ASIDE,
    REVISION_STEP,
    REVISIONS_OPENED,
    STEP_PEOPLE,
    EtapeDeRevision,
    Starts,
    in_order,
    task_stream,
)
from services.domain.registry import ABOUT_ORGANISMS, REGISTRY_EVENT_TYPES
from services.domain.state import NotLoaded

ViewT = TypeVar("ViewT", bound=ServiceView)
RulesT = TypeVar("RulesT")


class RegistryAwareProcessor(Generic[ViewT, RulesT]):
    """A processor over a view that folds the registry and parks inputs waiting for it."""

    service: ClassVar[str]
    view_type: ClassVar[type[ServiceView]]  # built empty: a whole fold
    default_rules: ClassVar[Any]  # the rule set it decides with unless told

    def __init__(
        self,
        view: ViewT | None = None,
        rules: RulesT | None = None,
        ids: Callable[[UUID, int, str], UUID] = decision_id,
        rule_sets: Mapping[str, RulesT] | None = None,
    ) -> None:
        self.view: ViewT = cast(ViewT, self.view_type()) if view is None else view
        self.rules: RulesT = self.default_rules if rules is None else rules
        self.ids = ids
        self.rule_sets: dict[str, RulesT] = dict(
            rule_sets or {self.default_rules.version: self.default_rules}
        )
        """Every rule set a decision may name: a revision re-evaluates it with its own."""
        self.revisions_from = 1
        """The store position from which registry facts revise earlier decisions: a store
        recorded before revisions existed is not revised by its replay (set from the store)."""
        self.steps_from = 1
        """The store position from which a fact about an organism revises its people in
        steps; before it (a store recorded by the version before), in its own transaction."""
        self.space, self.space_from = "", 1
        """The namespace of a shard's decision ids, and from which position (`Starts`)."""

    def starting(self, starts: Starts) -> None:
        """Decide as the store says from where (`Starts`: revisions, steps, ids)."""
        self.revisions_from, self.steps_from = starts.revisions, starts.steps
        self.space, self.space_from = starts.space, starts.space_from

    def id_space(self, position: int, event_type: str = REVISION_STEP) -> str:
        """The namespace of the ids of what an input of `event_type` at `position` causes:
        a shard's own for a fact every shard records (about organisms, or a revision
        task's step), the service's for the rest (an input of one person's, whose id is
        unique across the shards)."""
        shared = event_type in ABOUT_ORGANISMS or event_type == REVISION_STEP
        if shared and self.space and position >= self.space_from:
            return f"{self.service}/{self.space}"
        return self.service

    def process(self, message: Input) -> Outcome:
        """The events one input causes (or why it is refused). A registry fact: first the
        parked inputs it unblocks, by subject id, then its revisions: those of its person's
        subjects at once (an affiliation), or a task to revise everyone affiliated to the
        organisms it concerns, in steps (`kernel.tasks`)."""
        position = self.view.position + 1  # the position the input takes
        space = self.id_space(position, message.event_type)
        emitter = Emitter(self.view, message.event_id, self.service, self.ids, space)
        kind, payload = message.event_type, message.payload
        if isinstance(payload, EtapeDeRevision):
            return self.process_step(emitter, message, payload)
        if kind not in REGISTRY_EVENT_TYPES:
            return self.process_input(emitter, message)
        organisms = self.view.registry.organisms_concerned(kind, payload)  # before the fact
        emitter.input(registry_stream(kind, payload), message)
        unblocked = list(self.view.parking.unblocked_by(kind, payload))
        revising = position >= self.revisions_from
        if revising:  # domain.md: by subject id (a store recorded before: as it was parked)
            subject = self.view.SUBJECT.field
            unblocked.sort(key=lambda item: (str(item[1].payload.get(subject)), item[0]))
        for waiting_id, waiting in unblocked:
            self.decide_parked(emitter, UUID(waiting_id), waiting)
        if not revising:
            return emitter.outcome
        if kind == "AffiliationEnregistree":
            for subject_id in self.view.subjects_of([str(getattr(payload, "nir", ""))]):
                self.revise(emitter, subject_id, message.event_id)
        elif position < self.steps_from:  # (replay of a store recorded before steps only)
            people = {p for o in organisms for p in self.view.registry.affiliated.seconds(o)}
            for subject_id in self.view.subjects_of(people):
                self.revise(emitter, subject_id, message.event_id)
        elif peopled := [o for o in organisms if self.view.registry.affiliated.following(o, "", 1)]:
            fact_id = str(message.event_id)  # (an organism nobody was affiliated to: no task)
            opened = {"fait_id": fact_id, "organismes": peopled}
            stream = task_stream(fact_id)
            emitter.decision(stream, REVISIONS_OPENED, opened, message, message.correlation_id)
        return emitter.outcome

    def process_step(self, emitter: Emitter, message: Input, step: EtapeDeRevision) -> Outcome:
        """Record one step of a revision task and the revisions of the subjects of the
        people it covers (refused unless it is the task's next step)."""
        fact_id = str(step.fait_id)
        task = self.view.tasks.get(fact_id)
        if task is None or task.organism != step.organisme_id or task.after != step.apres:
            reason = "not the next step of an open revision task"
            return Outcome(refused=Refusal("payload.fait_id", reason))
        people = self.view.registry.affiliated.between(step.organisme_id, step.span)
        emitter.input(task_stream(fact_id), message)
        for subject_id in self.view.subjects_of(people):
            self.revise(emitter, subject_id, step.fait_id, task.since)
        return emitter.outcome

    def next_step(self, limit: int = STEP_PEOPLE) -> Input | None:
        """The next step of the oldest open revision task (None when none is open): the
        next `limit` people of its organism in hand, the last of them named unless the span
        reaches that organism's last person."""
        tasks = self.view.tasks
        if not tasks:
            return None
        task = in_order(tasks.values())[0]
        people = self.view.registry.affiliated.following(task.organism, task.after, limit)
        through = people[-1] if len(people) == limit else None
        step = EtapeDeRevision(
            fait_id=UUID(task.fact_id),
            organisme_id=task.organism,
            apres=task.after,
            jusqu_a=through,
        )
        space = self.id_space(self.view.position + 1)  # where the step is recorded
        step_id = self.ids(UUID(task.fact_id), -1 - task.steps, space)  # no decision's
        metadata = {"causation_id": task.fact_id, "correlation_id": task.correlation_id}
        return Input(step_id, REVISION_STEP, step, metadata)

    def revise_pending(self, emitter: Emitter, subject_id: str, nir: str) -> None:
        """Before an input about a subject is decided: record its revision if an open task
        has still to reach its person (domain.md: never decided on the superseded outcome)."""
        if not self.view.tasks:
            return
        state = self.view.subject(subject_id)
        if state is None:
            return
        organisms = {a.organisme_id for a in self.view.registry.affiliations_of(nir)}
        for task in in_order(self.view.tasks.values()):
            if state.at < task.since and any(task.pending(o, nir) for o in organisms):
                self.revise(emitter, subject_id, UUID(task.fact_id), task.since)
                return

    def revise(
        self, emitter: Emitter, subject_id: str, cause: UUID, before: int | None = None
    ) -> None:
        """Record the revision of a decided subject if the registry now gives another
        outcome (nothing when it gives the same, was not decided, or would park), caused by
        the fact `cause`: the input in hand, or the fact at position `before` whose task
        reaches the subject (which it revises only if decided before it: a decision taken
        since was taken knowing that fact, and a later fact revises it on its own)."""
        state = self.view.subject(subject_id)
        if state is None or state.outcome is None or state.decision_id is None:
            return  # not decided yet, or decided by its dates or category: never revised
        if before is not None and state.at >= before:
            return
        if state.aside == str(cause):
            return  # set aside for this very fact already (before an input, then its step)
        rules = self.rule_sets.get(str(state.regles_version))
        if rules is None:
            return  # decided by a rule set this processor does not know: left as it is
        stream = self.view.subject_stream(subject_id)
        try:
            revision = self.revision(state, UUID(state.decision_id), rules)
        except NotLoaded:
            raise  # a bug of what was loaded, not the subject's: the batch fails, retried
        except Exception as exc:  # the subject's record makes the pure rules fail: every
            # time, so it is set aside, on record, and the fact or step goes on with the rest
            field = self.view.SUBJECT.field
            aside = {"fait_id": str(cause), field: subject_id, "erreur": type(exc).__name__}
            emitter.decision(stream, REVISION_SET_ASIDE, aside, cause, state.correlation_id)
            return
        if revision is not None:
            payload = revision.payload
            emitter.decision(stream, revision.event_type, payload, cause, state.correlation_id)

    def revision(self, state: Any, revised: UUID, rules: RulesT) -> Decision | None:
        """The revision of a decided subject on the registry as it now stands, if any."""
        raise NotImplementedError

    def process_input(self, emitter: Emitter, message: Input) -> Outcome:
        """Record and decide one of the service's own inputs."""
        raise NotImplementedError

    def decide_parked(self, emitter: Emitter, event_id: UUID, waiting: Waiting) -> None:
        """Try again to decide an input parked for a registry fact (emit nothing if it must
        still wait: its DecisionEnAttente is on record)."""
        raise NotImplementedError
