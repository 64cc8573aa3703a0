"""Every byte both services decide on the demo scenario, pinned.

Decisions are part of the hashed, replayed record: a refactoring of the rules, the models or
the processors must not change one byte of what they emit for the same inputs. The digest
below was taken from the code before the rules returned the outbound models; if a change of
the law (a new RuleSet) or of the scenario changes it on purpose, record the new digest in
the same commit and say why.
"""

from __future__ import annotations

import hashlib

import pytest

from contracts import topics
from contracts.parsing import ContractError, parse_inbound
from services.domain.catalog import SERVICES
from services.domain.kernel.processing import Input, envelope_metadata
from services.domain.kernel.records import canonical_bytes
from services.domain.kernel.tasks import STEP_PEOPLE
from services.tools.demo.scenario import generate

pytestmark = pytest.mark.unit

SIZE, SEED = 3000, 7
EXPECTED = (6867, "3f0016a227a19703cd879f49ce4e16bde05542d18c98fd80d68f556b659033ef")
# 6771 events before revisions (issue 13); 6772 with them: the scenario records a person's
# affiliation to another organism after their benefit T-PRE-2018-000204 was decided, and the
# benefits service publishes that VersementRevise. 6855 since the scenario includes late
# registry facts (services/tools/demo/late.py, phases 4 and 5: conventions terminated in the
# past and sent again with other caisses, affiliations backdated to another organism, then
# inputs after them), which both services revise decisions for. The messages of phases 1-3
# are unchanged, and so is the digest of what they give (6772, 127afab8...). Then the same
# 6855 events in another order (92a781b4... before): the inputs one registry fact unblocks
# are decided by subject id, as domain.md says, not in the order they were parked.
# 6867 since a fact about an organism revises its people in steps (kernel/tasks.py): the six
# such facts of the scenario that concern someone record a RevisionsOuvertes and then one
# EtapeDeRevision each (200 people per step, run after each input as the reviser does); the
# same revisions are recorded, of the same types and counts, and every subject's final
# outcome is the one the in-transaction revisions gave (6855, 6472307a... before).
TOPIC_OF_ROLE = {
    "referentiel": topics.REFERENTIEL,
    "cotisations": topics.COTISATIONS,
    "prestations": topics.PRESTATIONS,
}


def decide_scenario() -> tuple[int, str]:
    """Feed the scenario's messages to each service's processor, in publication order, and
    digest what comes out: refusals and every event (stream, version, id, type, payload,
    metadata in canonical JSON)."""
    scenario = generate(SIZE, SEED, "T")
    digest = hashlib.sha256()
    emitted = 0
    for service in SERVICES.values():
        processor = service.new_processor()
        for message in scenario.messages:
            allowed = service.inputs.get(TOPIC_OF_ROLE[message.topic])
            if allowed is None:
                continue
            try:
                event = parse_inbound(message.value)
            except ContractError as error:
                digest.update(f"refused-contract {error}\n".encode())
                continue
            if event.event_type not in allowed:
                continue
            outcome = processor.process(
                Input(event.event_id, event.event_type, event.payload, envelope_metadata(event))
            )
            digest.update(f"{outcome.refused} {outcome.duplicate}\n".encode())
            events = list(outcome.events)
            while (step := processor.next_step(STEP_PEOPLE)) is not None:  # as the reviser
                events.extend(processor.process(step).events)
            for stream, version, new in events:
                emitted += 1
                digest.update(
                    b"|".join(
                        [
                            stream.encode(),
                            str(version).encode(),
                            str(new.event_id).encode(),
                            new.event_type.encode(),
                            canonical_bytes(new.payload),
                            canonical_bytes(new.metadata),
                        ]
                    )
                    + b"\n"
                )
    return emitted, digest.hexdigest()


def test_the_services_decide_the_scenario_byte_for_byte_as_before() -> None:
    assert decide_scenario() == EXPECTED
