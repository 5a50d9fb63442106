-- The audit projection accepts every event the log accepts (issue 12, invariant 8).
--
-- `events.data` is `json`: it keeps the exact text, and JSON may carry `\u0000` (NUL), which a
-- `Read` of a binary file or a command printing NUL puts into tool results and text. Neither
-- `text` nor `jsonb` can hold NUL, so the projections used for audit — `->>` extraction of the
-- tool name and correlation id (which de-escapes every string it passes, not only the one it
-- returns) and the `jsonb` conversion of the containment index — failed on such an event, and
-- the failure took the whole commit batch with it. The stored event stays exactly as it was;
-- only what is *indexed* is sanitised: NUL becomes U+FFFD there.
--
-- `audit_text` rewrites the JSON text only when it contains the six characters `\u0000`. First
-- every escaped backslash `\\` becomes `\u005c` (the same character, escaped the other way), so
-- what is left of the form `\u0000` is a real NUL escape and not the text "\u0000" written
-- with an escaped backslash; then `\u0000` becomes `\ufffd`. JSON strings are scanned left to
-- right exactly like `replace` scans, so the first step cannot split an escape.
--
-- Keys extracted into btree-indexed columns are cut to 256 characters (at most 1 KiB, well
-- under btree's ~2.7 KB entry limit): a tool name or id longer than that is an agent's
-- garbage, and an index entry too large would refuse the event. The HTTP filters refuse longer
-- values with a 400, so a filter can never miss a cut value.

CREATE FUNCTION audit_text(data text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(data, '\u0000') = 0 THEN data
                ELSE replace(replace(data, '\\', '\u005c'), '\u0000', '\ufffd') END
$$;

-- The document the containment filter (`?contains=`) searches: `data` as jsonb, sanitised.
CREATE FUNCTION audit_doc(data json) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT audit_text(data::text)::jsonb
$$;

CREATE OR REPLACE FUNCTION audit_tool_name(event text, data text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN event IN ('tool_use', 'permission_request')
                THEN left(audit_text(data)::json ->> 'tool_name', 256) END
$$;

CREATE OR REPLACE FUNCTION audit_correlation_id(event text, data text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT left(CASE
        WHEN event IN ('tool_use', 'tool_result') THEN audit_text(data)::json ->> 'tool_use_id'
        WHEN event IN ('permission_request', 'ask_user_question', 'hook_decision_request',
                       'permission_resolved', 'question_resolved')
            THEN audit_text(data)::json ->> 'correlation_id'
    END, 256)
$$;

-- The containment index on the sanitised document. Rebuilding blocks appends for as long as
-- the build takes (seconds per million rows here); on a large table build it first with
--   CREATE INDEX CONCURRENTLY events_doc_rare ON events USING gin (audit_doc(data) jsonb_path_ops)
--       WHERE event NOT IN ('message_delta', 'message_complete');
-- and this migration only drops the old one.
DROP INDEX IF EXISTS events_data_rare;
CREATE INDEX IF NOT EXISTS events_doc_rare ON events USING gin (audit_doc(data) jsonb_path_ops)
    WHERE event NOT IN ('message_delta', 'message_complete');
