-- Whole transcripts of sessions idle for the retention period ($1: cutoff, $2: most sessions).
-- A session qualifies when no host holds it and nothing touched it since the cutoff (claims,
-- turns, releases and closes all set updated_at). FOR UPDATE orders this against a claim: a
-- claim that commits first makes the row fail the re-checked WHERE (owner set, updated_at new),
-- and a claim that comes later waits and then finds resume_token cleared, so the session starts
-- a new conversation instead of resuming one whose transcript is gone.
WITH stale AS (
    SELECT s.id
    FROM sessions s
    WHERE s.updated_at < $1
      AND s.owner IS NULL
      AND EXISTS (SELECT 1 FROM transcript_entries t WHERE t.session_id = s.id)
    LIMIT $2
    FOR UPDATE OF s SKIP LOCKED
), cleared AS (
    UPDATE sessions SET resume_token = NULL WHERE id IN (SELECT id FROM stale)
), removed AS (
    DELETE FROM transcript_entries WHERE session_id IN (SELECT id FROM stale)
)
SELECT count(*) FROM stale
