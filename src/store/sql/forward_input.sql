-- Record an input taken by a host that does not own session $1, for its owner $9 to pick up.
-- FOR SHARE orders it against a takeover: either it commits first and the new owner's claim
-- marks it delivered (user messages are re-queued from turn_state), or the takeover commits
-- first and nothing is inserted (the caller looks again and claims the session).
-- $10: delivered already (a 409 reply: nothing for the owner to do). The notification is sent
-- with the commit, so the owner never looks before the row is there.
WITH owned AS (
    SELECT id FROM sessions
    WHERE id = $1 AND owner = $9 AND status <> 'closed'
    FOR SHARE
), recorded AS (
    INSERT INTO inputs (session_id, type, body, principal, status, correlation_id, ask_seq,
                        turn_state, delivered)
    SELECT $1, $2, $3, $4, $5, left($6, 256), $7, $8, $10 FROM owned
    RETURNING id
), notified AS (
    SELECT pg_notify('awk_inputs', $1::text) FROM recorded WHERE NOT $10
)
SELECT id FROM recorded WHERE (SELECT count(*) FROM notified) >= 0
