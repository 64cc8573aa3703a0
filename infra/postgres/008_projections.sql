-- Projections of the record: balances operations and auditors need, folded from the store
-- by services.audit.projections.Projector and rebuildable from position 0
-- (`mandat projections rebuild`). They are not part of the record, so, like the relay's
-- checkpoints, they are tables the services may UPDATE.

-- Money each organism holds for each caisse de base, i.e. the reversements it owes:
-- the sum of PaiementEncaissePourCompte.montant_cents (alinéa 1, collection stores).
CREATE TABLE IF NOT EXISTS projection_sommes_detenues (
    organisme_id    text    NOT NULL,
    caisse_de_base  text    NOT NULL,
    montant_cents   bigint  NOT NULL,
    paiements       bigint  NOT NULL CHECK (paiements >= 0),
    PRIMARY KEY (organisme_id, caisse_de_base)
);

-- Cash benefits each organism paid on behalf of each caisse de base: the sum and count of
-- VersementDelegue (alinéa 2, benefits stores).
CREATE TABLE IF NOT EXISTS projection_versements_delegues (
    organisme_id    text    NOT NULL,
    caisse_de_base  text    NOT NULL,
    montant_cents   bigint  NOT NULL,
    versements      bigint  NOT NULL CHECK (versements >= 0),
    PRIMARY KEY (organisme_id, caisse_de_base)
);

-- How far each projection has folded the store: one row per projection, moved in the same
-- transaction as the projection's rows (so they never disagree).
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection  text        PRIMARY KEY,
    position    bigint      NOT NULL CHECK (position >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projection_checkpoints (projection, position)
VALUES ('sommes_detenues', 0), ('versements_delegues', 0)
ON CONFLICT (projection) DO NOTHING;

REVOKE ALL ON projection_sommes_detenues, projection_versements_delegues,
    projection_checkpoints FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON projection_sommes_detenues, projection_versements_delegues,
    projection_checkpoints TO mandat_service;
