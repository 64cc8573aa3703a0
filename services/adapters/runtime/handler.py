"""The consuming side both services share: a batch of Kafka records in, store commits out.

For each batch, under the store's lock: drop what is already recorded (the same record
redelivered, the same input sent again), load the decision state the batch's inputs name
(`runtime.state`), turn each record into an input or a rejection, let the service's processor
decide over that state, and append it all in one transaction with the state it changed. Only
then may the consumer commit its offsets. Nothing of the history is held between batches:
what another instance committed is in the tables the next batch reads.

Every record ends in exactly one of: its input and decisions, or its rejection -- nothing
escapes to the consumer framework, whatever the record holds. Failures come in two classes:

- **transient** (PostgreSQL or Kafka unreachable, a conflict with another writer, the
  database refusing for a reason of its own): retried with backoff for as long as it lasts; a
  valid record is never rejected nor skipped because a dependency was down;
- **caused by a record** (an exception of the pure rules on its content, a value the database
  refuses -- class 22 data exception, 23 constraint, 54 program limit -- while the database
  answers): the batch is split into single records, and the record that fails again alone
  (its second failure) is rejected with reason ``processing_error`` (the error class only,
  never its content), so its partition goes on. `mandat rejections redrive` re-submits it
  after a fix.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import asyncpg

from contracts import check_headers, mask_personal
from contracts.parsing import ContractError, parse_inbound
from services.adapters.eventstore import NewEvent
from services.adapters.eventstore.errors import DuplicateEventError, StoreError
from services.adapters.eventstore.port import Store, Transaction
from services.adapters.runtime import state, tracing
from services.adapters.runtime.shards import ABOUT_ORGANISMS, claim_keys, refusal
from services.domain.kernel.processing import (
    REJECTION,
    Input,
    Outcome,
    Processor,
    ServiceView,
    envelope_metadata,
    input_content,
    rejection_id,
)
from services.domain.kernel.streams import REJECTIONS_STREAM
from services.domain.kernel.tasks import (
    REVISION_SET_ASIDE,
    REVISIONS_OPENED,
    TASK_EVENT_TYPES,
    Starts,
)
from services.domain.state import LoadedState

log = logging.getLogger(__name__)

REDRIVE_HEADER = "mandat_redrive_of"
"""Header naming the rejection a re-driven record comes from (set by `rejections redrive`)."""

UNDECODABLE = "undecodable"
"""Reason class of a record the Kafka client could not decode (kept by reference)."""

PROCESSING_ERROR = "processing_error"
"""Reason class of a record isolated because processing it failed deterministically."""

_RECORD_CAUSED_SQLSTATES = frozenset({"22", "23", "54"})
"""SQLSTATE classes a record's content can cause: data exception, integrity constraint
violation, program limit exceeded. Any other database error is about the database."""


class Record(Protocol):
    """The parts of a Kafka record the handler reads (aiokafka's ConsumerRecord has them)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int

    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(slots=True)
class BatchReport:
    """What one batch did, for metrics and logs."""

    inputs: dict[str, int] = field(default_factory=dict)
    decisions: dict[tuple[str, str], int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    tasks_opened: int = 0  # revision tasks opened (worked in steps: runtime.reviser)
    refused: set[int] = field(default_factory=set)  # the batch's records ended refused
    attempts: int = 1
    seconds: float = 0.0

    def add(self, other: BatchReport) -> None:
        for mine, theirs in (
            (self.inputs, other.inputs),
            (self.rejected, other.rejected),
        ):
            for name, count in theirs.items():
                mine[name] = mine.get(name, 0) + count
        for key, count in other.decisions.items():
            self.decisions[key] = self.decisions.get(key, 0) + count
        self.duplicates += other.duplicates
        self.tasks_opened += other.tasks_opened
        self.refused |= other.refused


class RecordFailure(Exception):
    """Processing the record at `index` of the batch raised: deterministic (pure code)."""

    def __init__(self, index: int, cause: BaseException) -> None:
        super().__init__(f"record {index}: {type(cause).__name__}")
        self.index = index
        self.error_class = type(cause).__name__


RECORDED, DUPLICATE, REFUSED = "recorded", "duplicate", "refused"
"""How a record ends in its batch."""


class ClaimRaced(Exception):
    """Another shard claimed an id this batch recorded, while it decided: decided again
    (then refused), like a conflict with another writer."""


class StateBehind(Exception):
    """Folding into the decision state what the store holds beyond it failed: about the
    store, not about the records in hand (retried, the component reported stalled)."""


def origin(record: Record) -> dict[str, Any]:
    return {"topic": record.topic, "partition": record.partition, "offset": record.offset}


def redriven_from(record: Record) -> str | None:
    """The rejection id a re-driven record names (the last such header), if any."""
    found = None
    for name, value in record.headers:
        if name == REDRIVE_HEADER and value is not None:
            found = value.decode("utf-8", "replace")[:64]
    return found


def record_rejection_id(service: str, record: Record) -> UUID:
    """Where the record came from and what it holds: a re-driven record is identified by
    the rejection it re-drives (a second re-drive of it is the same record again)."""
    redrive = redriven_from(record)
    if redrive is not None:
        place = f"redrive/{redrive}"
        headers = [(k, v) for k, v in record.headers if k != REDRIVE_HEADER]
    else:
        place = f"{record.topic}/{record.partition}/{record.offset}/{record.timestamp}"
        headers = list(record.headers)
    return rejection_id(service, place, record.key, record.value, headers)


def _text(value: str) -> str:
    """A string PostgreSQL can keep in jsonb (which refuses the NUL character)."""
    return value.replace("\x00", "\\x00")


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _header(name: str, value: bytes | None) -> list[str | None]:
    """A header as stored: [name, value in base64], or with the name in base64 too when it
    holds a character jsonb cannot ([name, value, "b64"])."""
    if "\x00" in name:
        return [_b64(name.encode("utf-8", "surrogatepass")), _b64(value), "b64"]
    return [name, _b64(value)]


def rejection_event(
    record: Record, error: ContractError, event_id: UUID, kind: str, *, whole: bool = True
) -> NewEvent:
    """The record kept as it came (bytes in base64) with why it was refused, under its
    `record_rejection_id`. Without
    `whole` (its copy could not be stored either) it is quarantined by reference: where it
    is in Kafka and the digest of what it holds, for a re-drive from the topic."""
    payload: dict[str, Any] = {
        "reason": _text(str(error)),
        "field": None if error.field is None else _text(error.field),
        "kind": kind,
        **origin(record),
        "timestamp": record.timestamp,
    }
    if whole:
        payload["key"] = _b64(record.key)
        payload["value"] = _b64(record.value)
        payload["headers"] = [_header(k, v) for k, v in record.headers]
    else:
        payload.update(key=None, value=None, headers=[], digest=event_id.hex)
    redrive = redriven_from(record)
    metadata = {"redrive_of": _text(redrive)} if redrive is not None else {}
    return NewEvent(event_id, REJECTION, payload, metadata)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` says something about a dependency rather than about a record.

    A duplicate id or a stream version taken (`StoreError`) is not: under the store's lock,
    reading what was committed, no other writer can cause it -- a record did (an input
    whose event id is another's decision id, for instance), and it is isolated like any."""
    if isinstance(exc, StoreError):
        return False
    if isinstance(exc, StateBehind | ClaimRaced):  # never isolate records for these
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return str(exc.sqlstate or "")[:2] not in _RECORD_CAUSED_SQLSTATES
    return isinstance(
        exc,
        OSError
        | TimeoutError
        | ConnectionError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | asyncpg.ProtocolError,
    )


class BatchHandler:
    """Decides batches of records for one service over its decision state."""

    def __init__(
        self,
        store: Store,
        new_processor: Callable[..., Processor],
        allowed: Mapping[str, frozenset[str]],
        *,
        backoff_max: float = 5.0,
        strikes: int = 2,
    ) -> None:
        self.store = store
        self.new_processor = new_processor  # (view=...) -> a processor deciding over it
        self.allowed = allowed  # event types each topic may carry
        self.backoff_max = backoff_max
        self.strikes = strikes  # failures of a record alone before it is isolated
        blank = new_processor()
        self.service = blank.service
        self.view_type: type[ServiceView] = type(blank.view)
        self.processor = blank  # the processor of the batch in hand (or the last one)
        self.position = 0  # the store head the last batch committed (or catch_up found)
        self.starts: Starts | None = None  # recorded once in the store; read once
        self.on_retry: Callable[[BaseException], None] = lambda exc: None
        claims = getattr(store, "claims", None)  # one shard of several: (hub table, shard)
        self.sharded, self.shard = claims is not None, claims[1] if claims else 0
        self.busy_since: float | None = None  # monotonic time the batch in hand started
        self.stall_reason: str | None = None  # the last failure of the batch in hand

    def stalled_seconds(self) -> float:
        """How long the batch in hand has been in hand (0 between batches): a batch takes
        milliseconds, so one held for long is failing or hanging, either way no progress."""
        return 0.0 if self.busy_since is None else time.monotonic() - self.busy_since

    async def handle(
        self, records: Sequence[Record], parsed: Sequence[Input | ContractError] | None = None
    ) -> BatchReport:
        """Record and decide `records` (`parsed` already, when given); returns once each is
        committed to the store."""
        started = time.perf_counter()
        self.busy_since, self.stall_reason = time.monotonic(), None
        try:
            report = await self._record_all(records, parsed)
        finally:
            self.busy_since, self.stall_reason = None, None
        report.seconds = time.perf_counter() - started
        return report

    async def catch_up(self) -> int:
        """Bring the decision state up to the store's head (nothing to do unless events
        were appended without it), a chunk per transaction; returns the head."""
        self.position = await state.catch_up(self.store, self.view_type)
        self.starts = await self.store.revisions_from()
        return self.position

    def parse(self, records: Sequence[Record]) -> list[Input | ContractError]:
        """Each record as an input, or why the contract refuses it (needs no state)."""
        with tracing.parse_span(records):
            return [self._parse(r) for r in records]

    async def _record_all(
        self, records: Sequence[Record], parsed: Sequence[Input | ContractError] | None
    ) -> BatchReport:
        """Commit `records` in order: whole when it works, one by one around a failure."""
        report = BatchReport()
        if parsed is None:
            parsed = self.parse(records)  # outside the lock
        service = self.processor.service
        rejection_ids = [record_rejection_id(service, r) for r in records]  # once per batch
        queue: list[list[int]] = [list(range(len(records)))] if records else []
        poisoned: dict[int, str] = {}  # index -> error class, for records isolated
        strikes: dict[int, int] = {}
        quarantined: set[int] = set()
        delay = 0.05
        while queue:
            chunk = queue[0]
            try:
                report.add(
                    await self._attempt(
                        records, parsed, rejection_ids, chunk, poisoned, quarantined
                    )
                )
            except RecordFailure as failure:
                report.attempts += 1
                poisoned[failure.index] = failure.error_class
                self._note_failure(failure, records[failure.index])
                continue
            except Exception as exc:
                report.attempts += 1
                self._note_failure(exc, None)
                # every failure waits before the next attempt
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                if is_transient(exc) or not await self.store.ping():
                    continue  # for as long as it lasts
                if len(chunk) > 1:  # find the record: one at a time; each has failed once
                    queue[0:1] = [[i] for i in chunk]
                    for i in chunk:
                        strikes[i] = strikes.get(i, 0) + 1
                else:
                    index = chunk[0]
                    strikes[index] = strikes.get(index, 0) + 1
                    if strikes[index] >= self.strikes + 1:
                        quarantined.add(index)  # even its rejection could not be stored
                    elif strikes[index] >= self.strikes:
                        poisoned[index] = type(exc).__name__
                continue
            queue.pop(0)
            delay, self.stall_reason = 0.05, None
        return report

    def _note_failure(self, exc: BaseException, record: Record | None) -> None:
        self.stall_reason = mask_personal(f"{type(exc).__name__}: {exc}")[:200]
        self.on_retry(exc)
        where = origin(record) if record is not None else {}
        log.warning("batch attempt failed: %s", type(exc).__name__, extra=where)

    async def _attempt(
        self,
        records: Sequence[Record],
        parsed: Sequence[Input | ContractError],
        rejection_ids: Sequence[UUID],
        chunk: Sequence[int],
        poisoned: Mapping[int, str],
        quarantined: set[int],
    ) -> BatchReport:
        report = BatchReport()
        async with tracing.appending(self.store) as tx:
            starts = await self.current(tx)
            # what the records isolated name is not read: they are rejected, not decided
            batch = [m for i in chunk if i not in poisoned and isinstance(m := parsed[i], Input)]
            loaded = await state.load_batch(tx, self.view_type, batch)
            self.processor = self.deciding_over(tx, loaded, starts)
            view = self.processor.view
            rejections = {i: rejection_ids[i] for i in chunk}
            inputs = {i: m.event_id for i in chunk if isinstance(m := parsed[i], Input)}
            stored = await tx.stored_events([*rejections.values(), *inputs.values()])
            # a shard's inputs may name ids unique across shards that another holds
            holders: Mapping[str, int] = {}
            if self.sharded:
                holders = await self._holders(
                    tx, parsed, [rejection_ids[i] for i in chunk], chunk, poisoned
                )
            claims: list[str] = []  # ... and claim theirs, once recorded
            handled = set(stored)  # ids on record: rejections by record, inputs by event id
            batch_inputs: dict[UUID, Input] = {}  # inputs seen, by event id
            for index in chunk:
                record, message = records[index], parsed[index]
                if rejections[index] in handled or (
                    holders and holders.get(f"e:{rejections[index]}", self.shard) != self.shard
                ):  # (another shard's record of its refusal: a fact every shard records)
                    report.duplicates += 1  # this very record was refused before
                    report.refused.add(index)
                    continue
                handled.add(rejections[index])
                undecodable = getattr(record, "undecodable", None)
                if undecodable is not None:  # its bytes stay on the topic: kept by reference
                    error = ContractError(f"undecodable by the Kafka client: {undecodable}")
                    self._reject(
                        tx, record, rejections[index], error, report, UNDECODABLE, whole=False
                    )
                    report.refused.add(index)
                    continue
                if index in poisoned:
                    error = ContractError(f"{PROCESSING_ERROR}: {poisoned[index]}")
                    whole = index not in quarantined
                    self._reject(
                        tx, record, rejections[index], error, report, PROCESSING_ERROR, whole=whole
                    )
                    report.refused.add(index)
                    continue
                if isinstance(message, Input):
                    # content (a payload dumped) is computed only for an event id seen before
                    before = stored.get(message.event_id)
                    known: tuple[Any, ...] | None = None
                    if before is not None:
                        known = input_content(before.event_type, before.payload, before.metadata)
                    elif (seen := batch_inputs.get(message.event_id)) is not None:
                        known = seen.content()
                    # new here: refused if it names an id another shard holds (and then
                    # not in the batch's inputs: a later one under its id is not its copy)
                    why = (
                        refusal(message, holders, self.shard) if holders and known is None else None
                    )
                    if why is not None:
                        message = why
                    elif known is None:
                        batch_inputs[message.event_id] = message
                    elif known == message.content():
                        report.duplicates += 1
                        continue
                    else:
                        message = ContractError("already recorded with other content", "event_id")
                try:
                    with tracing.deciding(tx, record, message):
                        fate = self._decide(tx, record, rejections[index], message, report)
                    if fate == REFUSED:
                        report.refused.add(index)
                    elif fate == RECORDED and self.sharded and isinstance(message, Input):
                        claims += claim_keys(message, self.shard)[0]
                except Exception as exc:  # pure code: the record causes it, every time
                    raise RecordFailure(index, exc) from exc
            if self.sharded:
                await self.claim_recorded(tx, claims)
            await write_back(tx, view, loaded)
        self.committed(tx, starts)
        return report

    async def claim_recorded(self, tx: Transaction, inputs: Sequence[str]) -> None:
        """A shard claims the ids of all it appends (a fact about organisms: the first shard
        only; every shard records it under one id) and `inputs`, the keys of the inputs it
        records (their event and business ids). Another shard holding one of `inputs` took
        it while this one decided: `ClaimRaced`, decided again (then refused). Holding the id
        of a decision minted here, it has an input under that id: the record that caused the
        decision is at fault, as its duplicate id is within one store."""
        ids = [
            f"e:{event_id}"
            for event_id, kind in tx.appended()
            if kind not in ABOUT_ORGANISMS or self.shard == 0
        ]
        taken = await tx.claim([*inputs, *ids])
        if not taken:
            return
        if taken.keys() & set(inputs):
            raise ClaimRaced("an id was claimed by another shard while deciding")
        raise DuplicateEventError("a decision's id is another shard's event id")

    async def _holders(
        self,
        tx: Transaction,
        parsed: Sequence[Input | ContractError],
        refusals: Sequence[UUID],
        chunk: Sequence[int],
        poisoned: Mapping[int, str],
    ) -> Mapping[str, int]:
        """Which shard holds each id the chunk's inputs claim or name (unique across the
        shards): an input naming one another shard holds is refused (runtime.shards); and
        each record's refusal id, a record refused in another shard being refused already."""
        keys = [f"e:{r}" for r in refusals]
        for index in chunk:
            message = parsed[index]
            if index not in poisoned and isinstance(message, Input):
                claimed, named = claim_keys(message, self.shard)
                keys += claimed + named
        return await tx.holders(keys)

    def deciding_over(self, tx: Transaction, loaded: LoadedState, starts: Starts) -> Processor:
        """A processor deciding over what `loaded` holds, appending after the store's head,
        revising from where the store says."""
        view = self.view_type.from_state(loaded)
        view.position = tx.head_position
        processor = self.new_processor(view=view)
        processor.starting(starts)
        return processor

    def committed(self, tx: Transaction, starts: Starts) -> None:
        """What a committed transaction makes known: the head, and where revisions start
        (recorded by it, if it was the first)."""
        self.position = tx.head_position
        self.starts = starts

    async def current(self, tx: Transaction) -> Starts:
        """Bring the decision state up to the store's head in `tx` (events appended without
        it: see runtime.state); returns where facts revise decisions, and in steps, from."""
        try:
            while not await state.fold_behind(tx, self.view_type):
                pass
        except Exception as exc:
            if is_transient(exc):
                raise
            raise StateBehind(type(exc).__name__) from exc
        if self.starts is None:  # a handler not caught up first: known once committed
            return await tx.start_revisions()
        return self.starts

    def _parse(self, record: Record) -> Input | ContractError:
        try:
            check_headers(record.headers)
            event = parse_inbound(
                record.value, allowed=self.allowed.get(record.topic), key=record.key
            )
            metadata = envelope_metadata(event) | {"origin": origin(record)}
            redrive = redriven_from(record)
            if redrive is not None:  # kept as jsonb can (a NUL in a header must not refuse it)
                metadata["redrive_of"] = _text(redrive)
            return Input(event.event_id, event.event_type, event.payload, metadata)
        except ContractError as error:
            return error
        except Exception as exc:  # parsing is the contract's job; a bug there is ours
            return ContractError(f"{PROCESSING_ERROR}: {type(exc).__name__} while parsing")

    def _decide(
        self,
        tx: Transaction,
        record: Record,
        rejection_id: UUID,
        message: Input | ContractError,
        report: BatchReport,
    ) -> str:
        """Decide one record: `RECORDED`, `DUPLICATE` (no effect) or `REFUSED`."""
        if isinstance(message, Input):
            outcome = self.processor.process(message)
            if outcome.duplicate:
                report.duplicates += 1
                log.info("same content already recorded", extra={"event_id": str(message.event_id)})
                return DUPLICATE
            if outcome.refused is None:
                report.inputs[message.event_type] = report.inputs.get(message.event_type, 0) + 1
                append_outcome(tx, outcome, message.event_id, report)
                return RECORDED
            message = ContractError(outcome.refused.reason, outcome.refused.field)
        kind = PROCESSING_ERROR if str(message).startswith(PROCESSING_ERROR) else "contract"
        self._reject(tx, record, rejection_id, message, report, kind)
        return REFUSED

    def _reject(
        self,
        tx: Transaction,
        record: Record,
        rejection_id: UUID,
        error: ContractError,
        report: BatchReport,
        kind: str,
        *,
        whole: bool = True,
    ) -> None:
        event = rejection_event(record, error, rejection_id, kind, whole=whole)
        view = self.processor.view
        view.position = tx.append_at(REJECTIONS_STREAM, view.version(REJECTIONS_STREAM) + 1, event)
        view.apply(
            REJECTIONS_STREAM, str(event.event_id), event.event_type, event.payload, event.metadata
        )
        reason = kind if kind != "contract" else (error.field or "message")
        report.rejected[reason] = report.rejected.get(reason, 0) + 1
        log.info("rejected: %s", error, extra={"event_id": str(event.event_id), **origin(record)})


def append_outcome(tx: Transaction, outcome: Outcome, trigger: UUID, report: BatchReport) -> None:
    """Append what processing `trigger` (an input, or a revision task's step) gave, and
    count its decisions."""
    for stream_id, version, event in outcome.events:
        tx.append_at(stream_id, version, event)
        if event.event_id != trigger:
            count_decision(event, report)


async def write_back(tx: Transaction, view: ServiceView, loaded: LoadedState) -> None:
    """The state entries the view changed, written in the transaction of its appends."""
    if view.position != tx.head_position:
        raise RuntimeError("the view and the store disagree on the positions taken")
    await tx.save_state(view.changes(loaded), tx.head_position)


def count_decision(event: NewEvent, report: BatchReport) -> None:
    """Count a decision in `report` (a revision task's opening is no decision: not counted)."""
    if event.event_type in TASK_EVENT_TYPES:
        report.tasks_opened += event.event_type == REVISIONS_OPENED
        if event.event_type == REVISION_SET_ASIDE:  # counted with the records isolated
            report.rejected[REVISION_SET_ASIDE] = report.rejected.get(REVISION_SET_ASIDE, 0) + 1
            log.error("a revision set aside: %s", event.payload["erreur"])
        return
    key = (event.event_type, str(event.payload.get("motif") or ""))
    report.decisions[key] = report.decisions.get(key, 0) + 1
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "decided %s",
            event.event_type,
            extra={"event_id": str(event.event_id), **event.metadata},
        )
