-- One resume page: events after $2, at most $3, formatted as SSE frames and joined in seq order.
SELECT string_agg('id: ' || seq || E'\nevent: ' || event || E'\ndata: ' || data::text || E'\n\n',
                  '' ORDER BY seq),
       min(seq),
       max(seq),
       coalesce(bool_or(event = 'done'), false)
FROM (
    SELECT seq, event, data
    FROM events
    WHERE session_id = $1 AND seq > $2
    ORDER BY seq
    LIMIT $3
) page
