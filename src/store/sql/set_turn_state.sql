-- Set the state of turn $2 of session $1 while host $4 still owns the session at epoch $5.
-- Without the check, a host deposed while paused could, before it notices, mark a turn done or
-- lost after the new owner has re-queued it (or before the new owner's claim reads it): the
-- turn would then be neither run again nor reported lost, and never get its result. FOR SHARE
-- orders this against a takeover exactly as in record_input.sql and append.sql.
WITH owned AS (
    SELECT id FROM sessions
    WHERE id = $1 AND owner = $4 AND epoch = $5
    FOR SHARE
)
UPDATE inputs SET turn_state = $3
WHERE session_id = $1 AND id = $2 AND EXISTS (SELECT 1 FROM owned)
