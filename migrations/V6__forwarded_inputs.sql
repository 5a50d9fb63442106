-- Inputs taken by a host that does not own the session (issue 14, "any load balancer").
--
-- Such a host records the input exactly as the owner would (same row, same 204/409), with
-- `delivered = false`, and notifies `awk_inputs`; the owner picks undelivered rows up in id
-- order and marks them delivered (store/inputs.rs). A host that claims the session marks every
-- undelivered row delivered: user messages are re-queued from `turn_state` as always, and
-- controls or decisions meant for the previous owner's agent are moot.
ALTER TABLE inputs ADD COLUMN delivered boolean NOT NULL DEFAULT true;
CREATE INDEX inputs_undelivered ON inputs (session_id, id) WHERE NOT delivered;
