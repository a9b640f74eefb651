-- name: at_risk_count
-- answers: How many students does the at-risk list hold with these filters, and how many per tier? The same
--   students as at_risk_page (latest risk update of each; tier, course, time zone and lowest risk filters), so
--   the list can say "page N of M" without fetching every row.
-- param: tier String = '' | only this tier (critical, high, medium, low, minimal); '' = every tier
-- param: course String = '' | only students with an event of this course; '' = any
-- param: tz String = '' | only students in this time zone (as the latest score saw it); '' = any
-- param: min_risk Float64 = 0 | lowest 7-day risk (0-100) counted
SELECT
    count() AS students,
    countIf(current_tier = 'critical') AS critical,
    countIf(current_tier = 'high') AS high,
    countIf(current_tier = 'medium') AS medium,
    countIf(current_tier = 'low') AS low,
    countIf(current_tier = 'minimal') AS minimal
FROM
(
    SELECT
        user_id,
        argMax(tier, as_of) AS current_tier,
        argMax(risk_7d, as_of) AS current_risk_7d,
        argMax(signals_timezone, as_of) AS current_tz
    FROM risk_updates
    WHERE {course:String} = '' OR user_id IN (SELECT user_id FROM behavior_events WHERE course_id = {course:String})
    GROUP BY user_id
) AS latest
WHERE current_risk_7d >= {min_risk:Float64}
    AND ({tier:String} = '' OR current_tier = {tier:String})
    AND ({tz:String} = '' OR current_tz = {tz:String})
