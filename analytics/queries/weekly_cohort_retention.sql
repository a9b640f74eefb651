-- name: weekly_cohort_retention
-- answers: Of the students whose cohort week is W, what share was active again in week W+N?
--   A cohort is the Monday-based week of a student's first active day (or of their first enrolment).
--   Active means a login, session, lesson, course progress, quiz or content view that UTC day (the
--   same events that make a streak day). Only weeks that are over by as_of are reported.
-- param: cohort_by Enum(first_activity,enrolment) = 'first_activity' | form cohorts by first active week or by enrolment week
-- param: from Date = toMonday(today()) - 84 | first cohort week reported (any day of it)
-- param: to Date = today() | last cohort week reported (any day of it)
-- param: weeks UInt32 = 8 | how many weeks after the cohort week to report
-- param: as_of Date = today() | data is complete up to this day; weeks ending after it are left out
SELECT
    cohort_week,
    week_n,
    count() AS cohort_size,
    countIf(has(active_weeks, toDate(cohort_week + 7 * week_n))) AS retained,
    round(100 * retained / cohort_size, 1) AS retention_pct
FROM
(
    SELECT
        act.user_id AS user_id,
        if({cohort_by:String} = 'enrolment', enr.enrol_week, act.first_week) AS cohort_week,
        act.active_weeks AS active_weeks
    FROM
    (
        SELECT
            user_id,
            toMonday(minIf(day, is_active)) AS first_week,
            groupUniqArrayIf(toMonday(day), is_active) AS active_weeks
        FROM
        (
            SELECT user_id, day, maxMerge(active) AS is_active
            FROM user_daily_activity
            GROUP BY user_id, day
        ) AS days
        GROUP BY user_id
    ) AS act
    ANY LEFT JOIN
    (
        SELECT user_id, toMonday(toDate(min(event_time))) AS enrol_week
        FROM behavior_events
        WHERE event_type = 'enrolled'
        GROUP BY user_id
    ) AS enr USING user_id
) AS students
ARRAY JOIN range(toUInt32({weeks:UInt32} + 1)) AS week_n
WHERE cohort_week >= toMonday({from:Date})
  AND cohort_week <= toMonday({to:Date})
  AND cohort_week > toDate('1970-01-01')
  AND toDate(cohort_week + 7 * week_n + 6) <= {as_of:Date}
GROUP BY cohort_week, week_n
ORDER BY cohort_week, week_n
