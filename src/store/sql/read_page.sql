-- One resume page: events after $2, at most $3 of them and about $4 bytes of frames (the page
-- ends with the event that crosses $4, so it always has at least one), formatted as SSE frames
-- and joined in seq order.
SELECT string_agg('id: ' || seq || E'\nevent: ' || event || E'\ndata: ' || data::text || E'\n\n',
                  '' ORDER BY seq),
       min(seq),
       max(seq),
       coalesce(bool_or(event = 'done'), false)
FROM (
    SELECT seq, event, data,
           -- Frame bytes before this event (frame overhead ~ 30 bytes plus the digits).
           sum(octet_length(data::text) + octet_length(event) + 30)
               OVER (ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
    FROM (
        SELECT seq, event, data
        FROM events
        WHERE session_id = $1 AND seq > $2
        ORDER BY seq
        LIMIT $3
    ) next_events
) page
WHERE coalesce(before, 0) < $4
