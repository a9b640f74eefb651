-- name: tiers_over_time
-- answers: How many students were in each risk tier, day by day? Per UTC day and tier: the students whose last
--   risk update of that day (user_daily_signals, newest update of each student-day) put them in the tier. Silent
--   students are re-scored at least daily, so each day counts every student the engine scores.
-- param: from Date = today() - 29 | first day reported
-- param: to Date = today() | last day reported
SELECT day, tier, count() AS students
FROM user_daily_signals FINAL
WHERE day >= {from:Date} AND day <= {to:Date}
GROUP BY day, tier
ORDER BY day, indexOf(['critical', 'high', 'medium', 'low', 'minimal'], tier)
