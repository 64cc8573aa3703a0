"""Which shard of a service's store holds what (services/adapters/eventstore/shards.py says
where the shards are).

A person's whole history is in one shard: the shard of an input, a decision, an affiliation
is Kafka's own partition function of its NIR (murmur2, the producer's default) modulo the
number of shards -- fixed when the store is made, whatever the topics' partition counts
become. With a number of shards that is a multiple of the partition count, a record on
partition p lands in a shard k with k ≡ p (mod partitions): the instance a partition is
assigned to writes the shards of its partitions, and two instances write different shards.

Registry facts about an organism or a convention concern people in every shard: each shard
records them (the first shard first: a fact it refuses is refused once, there; a fact it
records, every other shard records too). A record refused before any content could be read
goes where its Kafka key sends it (its partition, without a key).

What must stay unique across shards -- every event id (an input's, a decision's, a
rejection's; a fact about organisms' by the first shard), a contribution's, payment's or
benefit's business id -- is **claimed** in the hub by the shard that records it, in the
transaction that records it (`Transaction.claim`; an input refused claims nothing). An input
naming an id another shard holds is refused with the reason the rules give within one store:
the same event id with other content, a business id recorded with other content (another
person's), a payment or an unpaid notice whose NIR is not its contribution's. Two shards
recording the same id at once: the second waits for the first's commit, finds the id taken,
and decides its batch again (then refuses it). A record breaking two rules at once may be
refused for the other of the two than within one store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.partitioner import murmur2

from contracts.parsing import ContractError
from services.domain.kernel.processing import Input
from services.domain.registry import ABOUT_ORGANISMS

EVERY_SHARD = -1
"""The place of a registry fact about an organism or a convention: every shard."""

__all__ = [
    "ABOUT_ORGANISMS",
    "EVERY_SHARD",
    "claim_keys",
    "place_of",
    "refusal",
    "shard_of",
    "shard_of_key",
]


def shard_of_key(key: bytes, shards: int) -> int:
    """The shard of a Kafka key: Kafka's default partition function, over the shards."""
    return int(murmur2(key) & 0x7FFFFFFF) % shards


def shard_of(nir: str, shards: int) -> int:
    """The shard that holds the history of the person `nir`."""
    return shard_of_key(nir.encode(), shards)


def place_of(key: bytes | None, partition: int, message: Input | ContractError, shards: int) -> int:
    """The shard a record goes to (`EVERY_SHARD` for a fact about organisms)."""
    if isinstance(message, Input):
        if message.event_type in ABOUT_ORGANISMS:
            return EVERY_SHARD
        payload: Any = message.payload  # every input not about organisms names a person
        return shard_of(payload.nir, shards)
    if key is None:
        return partition % shards
    return shard_of_key(key, shards)


# business ids that must be unique across shards: the payload field, and its claim's prefix
_CLAIMED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "CotisationDue": (("cotisation_id", "c"),),
    "PaiementRecu": (("paiement_id", "y"),),
    "PrestationEspecesDue": (("prestation_id", "b"),),
}
# ... and those an input names without introducing them (its contribution)
_NAMED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "PaiementRecu": (("cotisation_id", "c"),),
    "CotisationImpayee": (("cotisation_id", "c"),),
}


def claim_keys(message: Input, shard: int) -> tuple[list[str], list[str]]:
    """The ids `message` claims for `shard` when recorded there (its event id, its business
    id), and the ids it names (a contribution; held by another shard: refused). A fact
    about organisms, recorded in every shard under one id, is claimed by the first."""
    if message.event_type in ABOUT_ORGANISMS:
        own = [f"e:{message.event_id}"]
        return (own, []) if shard == 0 else ([], own)
    p: Any = message.payload
    claimed = [f"e:{message.event_id}"]
    claimed += [f"{prefix}:{getattr(p, f)}" for f, prefix in _CLAIMED.get(message.event_type, ())]
    named = [f"{prefix}:{getattr(p, f)}" for f, prefix in _NAMED.get(message.event_type, ())]
    return claimed, named


def refusal(message: Input, holders: Mapping[str, int], shard: int) -> ContractError | None:
    """Why `message`, in `shard`, is refused when an id it claims or names is held by
    another shard (`holders`: the shard holding each id held), in the order the rules
    check within one store: its event id, its own business id, then the contribution it
    names -- unless this shard holds its own business id already (then the rules, which
    know what was recorded under it, judge it: the same again is no breach)."""
    holder = holders.get(f"e:{message.event_id}", shard)
    if message.event_type in ABOUT_ORGANISMS:  # its own claim: the first shard's
        if holder not in (shard, 0):
            return ContractError("already recorded with other content", "event_id")
        return None
    if holder != shard:
        return ContractError("already recorded with other content", "event_id")
    p: Any = message.payload
    own = [(f, f"{prefix}:{getattr(p, f)}") for f, prefix in _CLAIMED.get(message.event_type, ())]
    for f, key in own:
        if holders.get(key, shard) != shard:
            value = getattr(p, f)
            reason = f"{value} is already recorded with other content (another person's)"
            return ContractError(reason, f"payload.{f}")
    if any(key in holders for _, key in own):
        return None
    for f, prefix in _NAMED.get(message.event_type, ()):
        if holders.get(f"{prefix}:{getattr(p, f)}", shard) != shard:
            reason = f"does not match the nir of cotisation {getattr(p, f)}"
            return ContractError(reason, "payload.nir")
    return None
