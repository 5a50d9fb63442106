-- The Claude CLI's transcripts, mirrored into Postgres (issue 13, invariant 7).
--
-- The CLI launched with `--session-mirror` reports every entry it writes to its local
-- transcript (`transcript_mirror` frames). The session's owner stores them here, fenced and
-- ordered exactly like events (store/writer.rs: one statement commits a batch's events and
-- entries together), so when a turn's `result` is committed its conversation is too, and any
-- host can write the transcript back where the CLI looks before `--resume`.
--
-- `file` is the transcript's path relative to its project directory: `<conversation>.jsonl`
-- for the main transcript, `<conversation>/subagents/agent-<id>.jsonl` for a subagent's. The
-- project directory (the sanitized cwd) is left out: it differs per host for sessions that run
-- in the server's own `<data-dir>/sessions/<id>`, and is recomputed where the file is written.
-- `seq` is the owner's order of arrival across all files of the session; `entry` keeps the
-- exact JSON line (json, not jsonb: key order and bytes as the CLI wrote them). An entry's
-- `uuid`, where it has one, is unique per file: a retried or repeated batch stores nothing twice.
CREATE TABLE transcript_entries (
    session_id  uuid        NOT NULL,
    seq         bigint      NOT NULL,
    file        text        NOT NULL,
    uuid        text,
    entry       json        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);
CREATE UNIQUE INDEX transcript_entries_uuid ON transcript_entries (session_id, file, uuid)
    WHERE uuid IS NOT NULL;
