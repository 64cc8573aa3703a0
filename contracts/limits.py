"""The size limits of wire contract v1, in one place.

They were always implied: a record beyond them could never be stored (PostgreSQL's btree
index rows, its ``bigint`` sums) nor copied to a rejection topic (the broker's largest
record). Stating them lets the door refuse such a record with a reason instead of letting it
fail deep in a service, over and over. The models (:mod:`.scalars`) and the parser
(:mod:`.parsing`) both read them from here; ``docs/contract.md`` lists them.
"""

from typing import Final

ID_MAX: Final = 64
"""Characters of an id or code (``cotisation_id``, ``caisse_de_base``, ``source``...)."""
TEXT_MAX: Final = 200
"""Characters of a free text: an organism's ``nom``, an entry of ``base_legale``."""
LIST_MAX: Final = 200
"""Entries of an array (``caisses_de_base``, ``base_legale``)."""
CENTS_MAX: Final = 100_000_000_000
"""Largest amount in cents: 10⁹ €. Far above any real contribution or benefit, and small
enough that 10,000 of them add up to no more than :data:`SUM_MAX`."""
SUM_MAX: Final = 10**15
"""Largest absolute value of an amount that is a sum or a difference (a balance such as
``solde_restant_cents``): 10¹³ €, far inside a signed 64-bit integer (about 9.2 × 10¹⁸), so
that a service adding such sums up cannot overflow a ``bigint``."""
VALUE_MAX: Final = 64 * 1024
"""Bytes of a message value, measured before it is decoded."""
HEADERS_MAX: Final = 16 * 1024
"""Bytes of a record's headers: the UTF-8 keys plus the values (a null value counts 0)."""
REASON_MAX: Final = 400
"""Characters of a rejection reason (it travels in a Kafka header)."""
