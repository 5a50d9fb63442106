-- The assistant's text events stay out of the event-name and containment indexes.
--
-- V2 left message_delta out of `events_event_created` and `events_data`; message_complete (one
-- per API message, carrying the whole text again) joins it here. Measured on this 2-core
-- machine by COPYing 200k message_complete rows of ~200 bytes of text into a copy of `events`
-- (BENCHMARKS.md, "Writer cost of the audit indexes"): with the V2 indexes 34-52k rows/s, with
-- these 87-94k rows/s, the same as with no audit index at all. Most of the difference is the
-- GIN entry per JSON path-value and the jsonb conversion it needs, for text that containment
-- (`@>`, whole-value equality) cannot usefully search. What audits look for, decisions, tool
-- calls and their results, questions, errors, stays indexed.
--
-- `?event=message_complete` reads `events_created` in time order, as `?event=message_delta`
-- already did: the rows are dense, so that scan stops early. `?contains=` searches every event
-- but these two unless `?event=` names one of them (src/store/audit.rs).
--
-- Rebuilding blocks appends to `events` for as long as the build takes (seconds per million
-- rows here). On a large table, build the new indexes first, without blocking:
--   CREATE INDEX CONCURRENTLY events_event_rare ON events (event, created_at, session_id, seq)
--       WHERE event NOT IN ('message_delta', 'message_complete');
--   CREATE INDEX CONCURRENTLY events_data_rare ON events USING gin ((data::jsonb) jsonb_path_ops)
--       WHERE event NOT IN ('message_delta', 'message_complete');
-- and this migration only drops the old ones.

DROP INDEX IF EXISTS events_event_created;
DROP INDEX IF EXISTS events_data;
CREATE INDEX IF NOT EXISTS events_event_rare ON events (event, created_at, session_id, seq)
    WHERE event NOT IN ('message_delta', 'message_complete');
CREATE INDEX IF NOT EXISTS events_data_rare ON events USING gin ((data::jsonb) jsonb_path_ops)
    WHERE event NOT IN ('message_delta', 'message_complete');
