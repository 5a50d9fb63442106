-- One retention batch: remove up to $2 events created before $1, oldest first.
--
-- Locks: only the removed rows (nobody else writes old events). The session row is updated
-- only when the batch removes the session's newest stored event, to keep
-- `greatest(last_seq, max(seq))` at or above every removed seq (ids never restart, and a
-- resume into the removed range is a 412, not a silent restart). A session that is being
-- appended to has newer events, so its row — which appends hold FOR SHARE — is not touched
-- and appends never wait for retention. Rows removed here are all older than every remaining
-- event with a higher seq of the same session, so "a higher seq still exists" is decided on
-- this statement's snapshot; concurrent batches are serialized by an advisory lock.
WITH doomed AS (
    SELECT session_id, seq
    FROM events
    WHERE created_at < $1
    ORDER BY created_at
    LIMIT $2
), removed AS (
    DELETE FROM events e
    USING doomed d
    WHERE e.session_id = d.session_id AND e.seq = d.seq
    RETURNING e.session_id, e.seq
), highest AS (
    SELECT session_id, max(seq) AS seq FROM removed GROUP BY session_id
), bumped AS (
    UPDATE sessions s
    SET last_seq = h.seq
    FROM highest h
    WHERE s.id = h.session_id
      AND s.last_seq < h.seq
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.session_id = h.session_id AND e.seq > h.seq)
    RETURNING s.id
)
SELECT (SELECT count(*) FROM removed), (SELECT count(*) FROM bumped)
