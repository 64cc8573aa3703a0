"""The law as code: pure, no I/O, no clock, no random ids (they are passed in).

``registry`` (effective-dated organisms, conventions, affiliations), ``kernel`` (inputs,
outcomes, decision ids, parking, the fold), ``collection`` (alinéa 1) and ``benefits``
(alinéa 2): rules, processor and view each; ``catalog`` describes each service once.
"""
