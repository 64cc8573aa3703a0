-- Sums that cannot overflow: a balance adds up amounts without bound over the years, and a
-- bigint sum that overflows would freeze its projection. numeric(38, 0) holds any sum of
-- contract amounts (each at most 10^11 cents) that PostgreSQL could ever count.
ALTER TABLE projection_sommes_detenues ALTER COLUMN montant_cents TYPE numeric(38, 0);
ALTER TABLE projection_versements_delegues ALTER COLUMN montant_cents TYPE numeric(38, 0);
