-- Generator: one row per session ($1..$8 are parallel arrays).
INSERT INTO sessions (id, principal, config, status, last_seq, turns, total_cost_usd,
                      created_at, updated_at)
SELECT id, principal, '{"fixture":"generated"}'::jsonb, status, last_seq, turns, cost,
       created_at, updated_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[], $5::int4[], $6::float8[],
            $7::timestamptz[], $8::timestamptz[])
     AS s(id, principal, status, last_seq, turns, cost, created_at, updated_at)
