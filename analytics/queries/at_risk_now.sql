-- name: at_risk_now
-- answers: Which students are at risk right now, how much, why (top factors in words) and when were they
--   last seen? Each student's latest risk update; highest 7-day risk first.
-- param: min_risk Float64 = 60 | lowest 7-day risk (0-100) to list; 60 = high and critical tiers
-- param: limit UInt32 = 100 | at most this many students
SELECT
    user_id,
    current_tier AS tier,
    round(current_risk_7d, 1) AS risk_7d,
    round(current_risk_30d, 1) AS risk_30d,
    arrayStringConcat(arraySlice(extractAll(current_factors, '"description":"([^"]*)"'), 1, 3), '; ') AS top_factors,
    last_seen,
    scored_as_of,
    current_model AS model_version
FROM
(
    SELECT
        user_id,
        argMax(tier, as_of) AS current_tier,
        argMax(risk_7d, as_of) AS current_risk_7d,
        argMax(risk_30d, as_of) AS current_risk_30d,
        argMax(factors, as_of) AS current_factors,
        argMax(signals_last_event_time, as_of) AS last_seen,
        max(as_of) AS scored_as_of,
        argMax(model_version, as_of) AS current_model
    FROM risk_updates
    GROUP BY user_id
) AS latest
WHERE current_risk_7d >= {min_risk:Float64}
ORDER BY current_risk_7d DESC, user_id
LIMIT {limit:UInt32}
