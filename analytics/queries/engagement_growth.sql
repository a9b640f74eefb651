-- name: engagement_growth
-- answers: Per day: DAU, WAU, MAU, stickiness (DAU/MAU), and where today's and recent students come from:
--   new (first active day), current (active today, and in the 6 days before), reactivated (active today,
--   last active 7-29 days ago), resurrected (active today, last active 30+ days ago), at-risk WAU (not
--   active today, active in the 6 days before) and at-risk MAU (not active in the last 7 days, active in
--   the 23 days before that). new + current + reactivated + resurrected = DAU. UTC days; active as in
--   weekly_cohort_retention.
-- param: from Date = today() - 29 | first day reported
-- param: to Date = today() | last day reported
SELECT
    toDate('1970-01-01') + d AS day,
    countIf(active_today) AS dau,
    countIf(in_wau) AS wau,
    countIf(in_mau) AS mau,
    round(dau / greatest(mau, 1), 3) AS stickiness,
    countIf(active_today AND first_day = d) AS new_students,
    countIf(active_today AND prev_day > 0 AND d - prev_day <= 6) AS current_students,
    countIf(active_today AND prev_day > 0 AND d - prev_day BETWEEN 7 AND 29) AS reactivated,
    countIf(active_today AND prev_day > 0 AND d - prev_day >= 30) AS resurrected,
    countIf(NOT active_today AND prev_day > 0 AND d - prev_day <= 6) AS at_risk_wau,
    countIf(NOT active_today AND prev_day > 0 AND d - prev_day BETWEEN 7 AND 29) AS at_risk_mau
FROM
(
    SELECT
        d,
        has(active_days, d) AS active_today,
        arrayReduce('min', active_days) AS first_day,
        arrayReduce('max', arrayFilter(x -> x < d, active_days)) AS prev_day,
        arrayExists(x -> x + 6 >= d AND x <= d, active_days) AS in_wau,
        arrayExists(x -> x + 29 >= d AND x <= d, active_days) AS in_mau
    FROM
    (
        SELECT user_id, groupArray(toUInt32(day)) AS active_days
        FROM
        (
            SELECT user_id, day
            FROM user_daily_activity
            WHERE day <= {to:Date}
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS days
        GROUP BY user_id
        HAVING max(day) >= {from:Date} - 29
    ) AS students
    ARRAY JOIN arrayMap(i -> toUInt32({from:Date}) + i, range(toUInt32({to:Date} - {from:Date} + 1))) AS d
) AS student_days
GROUP BY d
ORDER BY d
