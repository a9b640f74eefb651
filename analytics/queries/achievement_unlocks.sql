-- name: achievement_unlocks
-- answers: How often is each achievement unlocked, and how long does it take? Per achievement unlocked by
--   the end of as_of: students who unlocked it (of them, how many by `engage gamification backfill`), how
--   many of those were active from `from` to as_of, the unlock rate among all students active then (an
--   active day in that window: the events that make a streak day), and the median and 90th percentile of
--   days from a student's first event (first_seen) to the unlock (exact values of a student; for an even
--   count, the upper middle; unlocks whose first_seen is unknown are left out of these two). An unlock
--   delivered twice counts once (FINAL).
-- param: from Date = today() - 29 | first day of the window in which students count as active
-- param: as_of Date = today() | unlocks and activity up to the end of this day count
SELECT
    achievement_id,
    any(name) AS achievement_name,
    count() AS students_unlocked,
    sum(backfilled) AS backfilled_unlocks,
    sum(was_active) AS unlocked_active,
    round(100 * unlocked_active / (
        SELECT uniqExact(user_id)
        FROM
        (
            SELECT user_id
            FROM user_daily_activity
            WHERE day >= {from:Date} AND day <= {as_of:Date}
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS active_days
    ), 1) AS unlock_rate_pct,
    round(quantileExactIf(0.5)(seconds_to_unlock, first_seen_known) / 86400, 1) AS median_days_to_unlock,
    round(quantileExactIf(0.9)(seconds_to_unlock, first_seen_known) / 86400, 1) AS p90_days_to_unlock
FROM
(
    SELECT
        achievement_id,
        name,
        backfilled,
        was_active,
        toUInt32(first_seen) > 0 AS first_seen_known,
        toInt64(toUInt32(event_time)) - toInt64(toUInt32(first_seen)) AS seconds_to_unlock
    FROM
    (
        SELECT user_id, achievement_id, name, backfilled, event_time, first_seen
        FROM achievements_unlocked FINAL
        WHERE toDate(event_time) <= {as_of:Date}
    ) AS unlocks
    ANY LEFT JOIN
    (
        SELECT user_id, toUInt8(1) AS was_active
        FROM
        (
            SELECT user_id
            FROM user_daily_activity
            WHERE day >= {from:Date} AND day <= {as_of:Date}
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS active_days
        GROUP BY user_id
    ) AS active USING user_id
) AS unlocked
GROUP BY achievement_id
ORDER BY students_unlocked DESC, achievement_id
