, mirrored AS (
    -- $8..$12: one element per transcript entry (session, seq, file, uuid, entry).
    -- DO NOTHING: a retried batch, or an entry the CLI mirrors again (same uuid), is stored once.
    INSERT INTO transcript_entries (session_id, seq, file, uuid, entry)
    SELECT t.session_id, t.seq, t.file, t.uuid, t.entry::json
    FROM unnest($8::uuid[], $9::int8[], $10::text[], $11::text[], $12::text[])
        AS t(session_id, seq, file, uuid, entry)
    WHERE t.session_id IN (SELECT id FROM owned)
    ON CONFLICT DO NOTHING
)
