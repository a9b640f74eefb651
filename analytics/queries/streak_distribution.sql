-- name: streak_distribution
-- answers: How long are students' current streaks, and how much do freezes carry them? Each student's
--   latest snapshot on or before as_of, bucketed by current streak length: students, share, average
--   freezes held, students whose current run used a freeze, and freezes used in those runs.
-- param: as_of Date = today() | the day the streaks are read on
SELECT
    streak_bucket,
    count() AS students,
    round(100 * students / (
        SELECT uniqExact(user_id) FROM user_daily_signals WHERE day <= {as_of:Date}
    ), 1) AS pct_students,
    round(avg(freezes_held), 2) AS avg_freezes_held,
    countIf(freezes_used > 0) AS students_who_used_freezes,
    sum(freezes_used) AS freezes_used_total
FROM
(
    SELECT
        multiIf(
            streak = 0, '0',
            streak <= 2, '1-2',
            streak <= 6, '3-6',
            streak <= 13, '7-13',
            streak <= 29, '14-29',
            streak <= 99, '30-99',
            '100+'
        ) AS streak_bucket,
        streak,
        freezes_held,
        freezes_used
    FROM
    (
        SELECT
            user_id,
            argMax(signals_current_streak_days, as_of) AS streak,
            argMax(signals_streak_freezes_held, as_of) AS freezes_held,
            argMax(signals_streak_freezes_used, as_of) AS freezes_used
        FROM user_daily_signals
        WHERE day <= {as_of:Date}
        GROUP BY user_id
    ) AS latest
) AS bucketed
GROUP BY streak_bucket
ORDER BY min(streak)
