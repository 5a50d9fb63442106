-- Generator: events with explicit times; the audit columns are filled exactly as the
-- writer's append.sql fills them.
INSERT INTO events (session_id, seq, event, data, created_at, tool_name, correlation_id)
SELECT e.session_id, e.seq, e.event, e.data::json, e.created_at,
       audit_tool_name(e.event, e.data), audit_correlation_id(e.event, e.data)
FROM unnest($1::uuid[], $2::int8[], $3::text[], $4::text[], $5::timestamptz[])
     AS e(session_id, seq, event, data, created_at)
