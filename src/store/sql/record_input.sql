-- Record an inbound message while host $9 still owns the session at epoch $10.
-- FOR SHARE orders this against a takeover (an UPDATE of the row): either the input commits
-- first and the new owner's claim sees it among the open turns, or the takeover commits first
-- and nothing is inserted (the caller answers 503 and the client retries on the new owner).
-- The indexed correlation id keeps 256 characters, as the events' audit columns do (V4): an
-- agent's id may be longer, and a reply to it must still be recorded (the body keeps it whole).
INSERT INTO inputs (session_id, type, body, principal, status, correlation_id, ask_seq, turn_state)
SELECT $1, $2, $3, $4, $5, left($6, 256), $7, $8
FROM sessions
WHERE id = $1 AND owner = $9 AND epoch = $10
FOR SHARE
RETURNING id
