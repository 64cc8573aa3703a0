"""Audit of the record: replay of every decision, the hash chain, a subject's trail,
republishing to the audit topic, and the projections rebuilt from position 0.

Everything here reads the store, never Kafka, and never writes the record.

    mandat replay verify      recompute every recorded decision from the recorded inputs, in
                              store order, with the rule set it names; compare byte for byte
    mandat replay what-if     the decisions the current rules (or --rules MODULE:NAME) would
                              take differently over the recorded history
    mandat replay republish   re-emit stored decisions (--include-inputs: inputs too) to the
                              audit topic, headers replay=true and replay_id
    mandat audit chain        verify each store's hash chain; the first broken position
    mandat audit trail ID     a cotisation_id, prestation_id, paiement_id or NIR: inputs,
                              decisions, registry facts relied on, legal basis, rule set
    mandat projections rebuild  fold the balances again from position 0, compare with live

Common options: --service, --json, --database-url (else $DATABASE_URL, else
.run/endpoints.env), --collection-schema/--benefits-schema; replay commands also take
--from-position/--to-position, --since/--until (recording date) and --subject. Exit codes:
0 all holds, 1 something differs, 2 the command could not run.
"""
