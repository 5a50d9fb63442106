-- Audit log queries, session history and retention (store::audit, store::retention).
--
-- Every index here serves one query shape of GET /sessions, GET /audit/events and
-- GET /audit/inputs (and the CLI, which runs the same SQL); BENCHMARKS.md has each one's plan
-- and p50 at 1M events. Time-ordered keys end in (session_id, seq|id) so keyset pagination has
-- a total order. They cannot lead with session_id (DESIGN.md) because they are *cross-session*
-- by nature; under a distributed table they would be per-shard indexes, merged by time.

-- Tool name and correlation id, extracted once at append time so the audit filters are plain
-- btree lookups instead of a JSON parse per row at query time. Only the few event kinds that
-- carry them are parsed (the functions are inlined into append.sql, and the CASE short-cuts
-- before the cast), so message deltas — most of the volume — cost nothing extra.
-- `correlation_id` also takes `tool_use_id`, so one filter finds a tool call's whole story:
-- tool_use, permission_request, permission_resolved, tool_result.
ALTER TABLE events ADD COLUMN tool_name text, ADD COLUMN correlation_id text;

CREATE FUNCTION audit_tool_name(event text, data text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN event IN ('tool_use', 'permission_request')
                THEN data::json ->> 'tool_name' END
$$;

CREATE FUNCTION audit_correlation_id(event text, data text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN event IN ('tool_use', 'tool_result') THEN data::json ->> 'tool_use_id'
        WHEN event IN ('permission_request', 'ask_user_question', 'hook_decision_request',
                       'permission_resolved', 'question_resolved')
            THEN data::json ->> 'correlation_id'
    END
$$;

-- Rows written before this migration: only the few kinds above are touched.
UPDATE events
SET tool_name = audit_tool_name(event, data::text),
    correlation_id = audit_correlation_id(event, data::text)
WHERE event IN ('tool_use', 'tool_result', 'permission_request', 'ask_user_question',
                'hook_decision_request');

-- Writer cost, measured on this 2-core machine by bulk-inserting 200k events of a realistic mix
-- (70% message_delta) into each variant (DB CPU per event, best of 3; BENCHMARKS.md):
--   V1 (primary key only)                         ~3.3 us
--   + audit column extraction                     ~4.7 us
--   + the btree indexes below                     ~8-11 us
--   + a GIN index over *every* event's jsonb      ~29 us   (rejected: triples the cost)
--   + the partial GIN below (no message_delta)    ~12-15 us (chosen)
-- message_delta is most of a real stream and its content is repeated in the message_complete
-- that follows, so it is left out of the event-name and containment indexes; `?contains=` and
-- `?event=` search every other event, and `?event=message_delta` reads events_created.

-- Audit across sessions in time order, and retention's oldest-first scan.
CREATE INDEX events_created ON events (created_at, session_id, seq);
-- ?event=: one range per name, already in time order.
CREATE INDEX events_event_created ON events (event, created_at, session_id, seq)
    WHERE event <> 'message_delta';
-- ?tool_name= / ?correlation_id=: partial, so the many rows without one cost no index entry.
CREATE INDEX events_tool_name ON events (tool_name, created_at, session_id, seq)
    WHERE tool_name IS NOT NULL;
CREATE INDEX events_correlation ON events (correlation_id, created_at, session_id, seq)
    WHERE correlation_id IS NOT NULL;
-- ?contains= (JSON containment). `data` stays `json` (exact bytes for resumed frames, no
-- conversion on the hot path for deltas); the index is on its jsonb conversion, which only the
-- indexed rows pay. jsonb_path_ops: smaller and faster than the default opclass, and @> is the
-- only operator we offer. GIN buffers new entries in its pending list (fastupdate), merged by
-- autovacuum or by an insert that finds the list full.
CREATE INDEX events_data ON events USING gin ((data::jsonb) jsonb_path_ops)
    WHERE event <> 'message_delta';

-- GET /audit/inputs: time order, by principal, by outcome, by correlation id.
CREATE INDEX inputs_received ON inputs (received_at, session_id, id);
CREATE INDEX inputs_principal ON inputs (principal, received_at, session_id, id);
CREATE INDEX inputs_status ON inputs (status, received_at, session_id, id);
CREATE INDEX inputs_correlation ON inputs (correlation_id, received_at, session_id, id)
    WHERE correlation_id IS NOT NULL;

-- GET /sessions: newest first, a principal's own (scanned backwards) or everyone's (admins).
CREATE INDEX sessions_principal_created ON sessions (principal, created_at, id);
CREATE INDEX sessions_created ON sessions (created_at, id);
