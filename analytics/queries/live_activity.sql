-- name: live_activity
-- answers: How many students are on the platform right now, today and this week, and how busy is it? Students
--   with any event in the 5 minutes up to now (active_now), active students today and in the 7 UTC days up to
--   today (active as in weekly_cohort_retention: maxMerge(active) = 1 in user_daily_activity), and distinct events
--   whose event time is in the 60 seconds up to now (events_per_minute). The admin dashboard's live numbers.
-- param: now DateTime = now() | the moment the numbers describe
SELECT
    recent.active_now AS active_now,
    days.active_today AS active_today,
    days.active_week AS active_week,
    recent.events_per_minute AS events_per_minute
FROM
(
    SELECT
        1 AS joined,
        uniqExactIf(user_id, event_time > {now:DateTime} - 300) AS active_now,
        uniqExactIf(event_id, event_time > {now:DateTime} - 60) AS events_per_minute
    FROM behavior_events
    WHERE event_time > {now:DateTime} - 300 AND event_time <= {now:DateTime}
) AS recent
ANY LEFT JOIN
(
    SELECT
        1 AS joined,
        countIf(day = toDate({now:DateTime})) AS active_today,
        count() AS active_week
    FROM
    (
        SELECT user_id, max(day) AS day
        FROM
        (
            SELECT user_id, day
            FROM user_daily_activity
            WHERE day > toDate({now:DateTime}) - 7 AND day <= toDate({now:DateTime})
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS active_days
        GROUP BY user_id
    ) AS students
) AS days USING joined
