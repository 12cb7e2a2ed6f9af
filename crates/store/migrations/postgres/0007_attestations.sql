-- A verdict's signed attestation (the canonical JSON envelope of
-- leanfarm-attest), stored in the verdict's own transaction; NULL when the
-- verdict was not signed.
ALTER TABLE jobs ADD COLUMN attestation TEXT;

-- Retention walks final jobs by the time they finished.
CREATE INDEX jobs_final_by_finished ON jobs (finished_at, id) WHERE state IN ('done', 'dead');
