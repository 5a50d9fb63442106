-- Claim session $1, created by principal $3, for host $2: it must not be closed, and be
-- unowned, ours, or owned by a dead host ($4: the lease). Bumping the epoch fences the previous
-- owner: its next append finds a stale epoch. This UPDATE waits for any append holding the row
-- FOR SHARE, so the caller's next statement sees every event the previous owner committed.
UPDATE sessions
SET owner = $2, epoch = epoch + 1, status = 'active', handover_to = NULL, updated_at = now()
WHERE id = $1
  AND principal = $3
  AND status <> 'closed'
  AND (owner IS NULL OR owner = $2 OR NOT host_alive(owner, make_interval(secs => $4)))
-- previous_owner: the subquery reads the statement's snapshot, i.e. the row before this UPDATE
-- (for the takeover count; a host other than $2 there means the session was taken over).
RETURNING epoch, principal, config, resume_token, total_cost_usd, last_seq,
          (SELECT owner FROM sessions WHERE id = $1) AS previous_owner
