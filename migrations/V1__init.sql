-- Sessions, their event log, their inbound messages, and the hosts that own them.
-- Every key leads with session_id so one session's rows are one range (and one shard, if the
-- tables are ever distributed by session_id).

-- One row per server process. `id` doubles as the key of the session-level advisory lock the host
-- holds on a dedicated connection while it lives (pg_advisory_lock(<ns>, id)): when the process
-- dies, Postgres drops the connection and the lock, so other hosts can tell at once.
CREATE TABLE hosts (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text        NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    -- When the host last (re)took its advisory lock. A lock missing while Postgres restarted
    -- after locked_at is not a dead host: it has not had the chance to re-take it yet.
    locked_at     timestamptz NOT NULL DEFAULT now(),
    released_at   timestamptz
);

CREATE TABLE sessions (
    id            uuid        PRIMARY KEY,
    principal     text        NOT NULL,
    config        jsonb       NOT NULL,
    -- active: some host holds it in memory (or may); dormant: released, rehydrates on demand;
    -- closed: deleted by a client, history kept until retention.
    status        text        NOT NULL DEFAULT 'dormant'
                  CHECK (status IN ('active', 'dormant', 'closed')),
    -- Fencing: a host appends only while (owner, epoch) is what it claimed. NULL owner: nobody
    -- holds it (new sessions are born unowned; the host serving their first request claims them).
    owner         integer     REFERENCES hosts (id),
    epoch         bigint      NOT NULL DEFAULT 0,
    -- A live host that was asked for this session (the load balancer sends it there now) and
    -- waits for the owner to let go at its next turn boundary.
    handover_to   integer,
    -- Highest seq ever committed, maintained when a host releases the session and by retention,
    -- so ids keep growing even if every event row is gone. max(events.seq) covers the rest.
    last_seq      bigint      NOT NULL DEFAULT 0,
    resume_token  text,
    turns         integer     NOT NULL DEFAULT 0,
    total_cost_usd double precision NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_owner ON sessions (owner) WHERE owner IS NOT NULL;

-- The event log. `data` is `json`, not `jsonb`: it keeps the exact bytes the live stream sent,
-- so a frame resumed from the table is byte-identical to the live one, and costs no jsonb
-- conversion on the hot insert path (see store::writer for the figures).
CREATE TABLE events (
    session_id    uuid        NOT NULL,
    seq           bigint      NOT NULL,
    event         text        NOT NULL,
    data          json        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);

-- Every inbound message that got an answer, with its outcome. User messages also carry the
-- state of their turn, so a host that takes the session over can re-queue what was accepted but
-- never started, and report the turn that was in flight.
CREATE TABLE inputs (
    session_id    uuid        NOT NULL,
    id            bigint      GENERATED ALWAYS AS IDENTITY,
    type          text        NOT NULL,
    body          jsonb       NOT NULL,
    principal     text        NOT NULL,
    status        smallint    NOT NULL,
    correlation_id text,
    -- For decisions: the seq of the request event they answer (permission_request, ...).
    ask_seq       bigint,
    turn_state    text        CHECK (turn_state IN ('queued', 'running', 'done', 'lost')),
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, id)
);
-- First reply wins across hosts too: at most one accepted decision per request event.
CREATE UNIQUE INDEX inputs_one_decision ON inputs (session_id, ask_seq)
    WHERE ask_seq IS NOT NULL AND status = 204;
CREATE INDEX inputs_open_turns ON inputs (session_id, id)
    WHERE turn_state IN ('queued', 'running');

-- Is host `h` alive? It is when it has not released itself, its lease is fresh, and it holds its
-- advisory lock — or Postgres restarted since it last took the lock (every lock vanished at
-- once; give it its lease to re-take it rather than reading the restart as a mass death). The
-- lease is counted from the later of its heartbeat and the Postgres start, for the same reason.
CREATE FUNCTION host_alive(h integer, lease interval) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM hosts
        WHERE id = h
          AND released_at IS NULL
          AND greatest(heartbeat_at, pg_postmaster_start_time()) > now() - lease
          AND (locked_at < pg_postmaster_start_time()
               OR EXISTS (SELECT 1 FROM pg_locks
                          WHERE locktype = 'advisory' AND granted
                            AND classid = 1096239955::oid  -- store::LOCK_NS
                            AND objid = h::oid AND objsubid = 2))
    )
$$;
