-- Group commit with fencing, in one statement.
-- $1..$4: one element per event (session, seq, name, data); $5/$6: each session once with the
-- epoch the writer holds; $7: this host.
-- `owned` locks the session rows FOR SHARE while the events are inserted: a concurrent claim
-- (an UPDATE that bumps the epoch) waits for this statement, and if the claim committed first,
-- the locking re-check sees the new epoch and the session's events are skipped (fenced).
-- Retries after a failure that may have committed replace /*RETRY*/ with ON CONFLICT DO NOTHING
-- (store/writer.rs, `Attempt`); a first attempt inserts plainly.
-- Batches that carry mirrored transcript entries replace the TRANSCRIPT marker with
-- sql/append_transcript.sql: the entries are inserted under the same `owned` check, in the
-- same statement, so they commit exactly when the events do (invariant 7).
-- The audit columns are extracted by inlined SQL functions (migrations/V2__audit.sql) that
-- parse only the few event kinds carrying a tool name or correlation id.
WITH owned AS (
    SELECT s.id
    FROM sessions s
    JOIN unnest($5::uuid[], $6::int8[]) AS w(id, epoch) ON s.id = w.id
    WHERE s.epoch = w.epoch AND s.owner = $7
    FOR SHARE OF s
), inserted AS (
    INSERT INTO events (session_id, seq, event, data, tool_name, correlation_id)
    SELECT e.session_id, e.seq, e.event, e.data::json,
           audit_tool_name(e.event, e.data), audit_correlation_id(e.event, e.data)
    FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[]) AS e(session_id, seq, event, data)
    WHERE e.session_id IN (SELECT id FROM owned)
    /*RETRY*/
)/*TRANSCRIPT*/, notified AS (
    -- One notification per stored session with its newest seq, for the hosts that follow it
    -- (store/listen.rs). Inside the statement's transaction: delivered only after the commit.
    SELECT pg_notify('awk_events', e.session_id::text || ' ' || max(e.seq))
    FROM unnest($1::uuid[], $2::int8[]) AS e(session_id, seq)
    WHERE e.session_id IN (SELECT id FROM owned)
    GROUP BY e.session_id
)
-- The scalar subquery runs `notified` once (a CTE that is not referenced is never run).
SELECT id FROM owned WHERE (SELECT count(*) FROM notified) >= 0
