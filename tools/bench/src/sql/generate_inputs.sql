-- Generator: inputs with explicit times.
INSERT INTO inputs (session_id, type, body, principal, status, correlation_id, ask_seq,
                    turn_state, received_at)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::jsonb[], $4::text[], $5::int2[], $6::text[],
                     $7::int8[], $8::text[], $9::timestamptz[])
