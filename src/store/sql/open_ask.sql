-- The request a reply with correlation id $2 answers in session $1: the newest permission,
-- question or hook request with that id, if its turn has not ended since (no `result` or
-- `done` after it) and no reply won it yet (no `*_resolved` after it).
SELECT a.seq, a.event
FROM events a
WHERE a.session_id = $1
  AND a.correlation_id = left($2, 256)
  AND a.event IN ('permission_request', 'ask_user_question', 'hook_decision_request')
  AND NOT EXISTS (
      SELECT 1 FROM events r
      WHERE r.session_id = $1 AND r.seq > a.seq
        AND (r.event IN ('result', 'done')
             OR (r.event IN ('permission_resolved', 'question_resolved')
                 AND r.correlation_id = a.correlation_id)))
ORDER BY a.seq DESC
LIMIT 1
