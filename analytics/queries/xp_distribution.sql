-- name: xp_distribution
-- answers: How is XP spread over the students, and which levels have they reached? Every student seen up to
--   as_of (any event), with their all-time XP at the end of that day (the total on their newest XP award; 0
--   when none) and their level (their highest level-up; 1 when none). One row for all students, then one per
--   XP bucket, then one per level: students, their share of all, and the 25th, 50th, 75th, 90th and 99th
--   percentiles of XP in the row's group (exact values of a student; for an even count, the upper middle).
--   Duplicated award and level-up rows do not change a maximum, so no FINAL is needed.
-- param: as_of Date = today() | XP and levels as they were at the end of this day
SELECT
    dimension,
    bucket,
    count() AS students,
    round(100 * students / (SELECT uniqExact(user_id) FROM user_daily_activity WHERE day <= {as_of:Date}), 1)
        AS pct_students,
    quantileExact(0.25)(xp) AS p25_xp,
    quantileExact(0.5)(xp) AS p50_xp,
    quantileExact(0.75)(xp) AS p75_xp,
    quantileExact(0.9)(xp) AS p90_xp,
    quantileExact(0.99)(xp) AS p99_xp
FROM
(
    SELECT
        xp,
        greatest(level, toInt64(1)) AS student_level,
        multiIf(
            xp = 0, '0',
            xp < 100, '1-99',
            xp < 500, '100-499',
            xp < 1000, '500-999',
            xp < 5000, '1000-4999',
            xp < 10000, '5000-9999',
            '10000+'
        ) AS xp_bucket
    FROM
    (
        SELECT user_id, xp
        FROM
        (
            SELECT user_id
            FROM user_daily_activity
            WHERE day <= {as_of:Date}
            GROUP BY user_id
        ) AS seen
        ANY LEFT JOIN
        (
            SELECT user_id, max(total_xp) AS xp
            FROM xp_awards
            WHERE toDate(event_time) <= {as_of:Date}
            GROUP BY user_id
        ) AS awards USING user_id
    ) AS with_xp
    ANY LEFT JOIN
    (
        SELECT user_id, max(level) AS level
        FROM level_ups
        WHERE toDate(event_time) <= {as_of:Date}
        GROUP BY user_id
    ) AS ups USING user_id
) AS students
ARRAY JOIN
    ['all', 'xp', 'level'] AS dimension,
    ['all', xp_bucket, concat('level ', toString(student_level))] AS bucket,
    [toInt64(0), xp, student_level] AS sort_key
GROUP BY dimension, bucket
ORDER BY indexOf(['all', 'xp', 'level'], dimension), min(sort_key)
