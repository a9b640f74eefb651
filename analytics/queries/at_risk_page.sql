-- name: at_risk_page
-- answers: One page of students by their latest risk update, for the admin at-risk list: tier, 7- and 30-day
--   risk, the trend (7-day risk now minus the last score at least 7 days before now; against the first score for
--   a student scored for less than 7 days), the top three factors in words, last seen, when and why the latest
--   score was made, and the student's time zone. Filtered by tier, course (a student with any event of the course)
--   and time zone ('' = any), sorted by risk, last seen or user id, paged by offset and limit (at_risk_count gives
--   the matching total). Ties are broken by user id.
-- param: tier String = '' | only this tier (critical, high, medium, low, minimal); '' = every tier
-- param: course String = '' | only students with an event of this course; '' = any
-- param: tz String = '' | only students in this time zone (as the latest score saw it); '' = any
-- param: min_risk Float64 = 0 | lowest 7-day risk (0-100) listed
-- param: now DateTime = now() | the trend compares the latest score with the last one at least 7 days before this
-- param: sort Enum(risk,last_seen,user) = 'risk' | what the page is sorted by
-- param: dir Enum(desc,asc) = 'desc' | sort direction
-- param: offset UInt32 = 0 | students skipped (page * limit)
-- param: limit UInt32 = 50 | students on the page
SELECT
    user_id,
    current_tier AS tier,
    round(current_risk_7d, 1) AS risk_7d,
    round(current_risk_30d, 1) AS risk_30d,
    round(current_risk_7d - earlier_risk_7d, 1) AS trend_7d,
    arrayStringConcat(arraySlice(extractAll(current_factors, '"description":"([^"]*)"'), 1, 3), '; ') AS top_factors,
    last_seen,
    scored_as_of,
    current_scored_at AS scored_at,
    current_trigger AS trigger,
    current_tz AS timezone,
    current_model AS model_version
FROM
(
    SELECT
        user_id,
        argMax(tier, as_of) AS current_tier,
        argMax(risk_7d, as_of) AS current_risk_7d,
        argMax(risk_30d, as_of) AS current_risk_30d,
        if(
            countIf(as_of <= {now:DateTime} - 604800) > 0,
            argMaxIf(risk_7d, as_of, as_of <= {now:DateTime} - 604800),
            argMin(risk_7d, as_of)
        ) AS earlier_risk_7d,
        argMax(factors, as_of) AS current_factors,
        argMax(signals_last_event_time, as_of) AS last_seen,
        max(as_of) AS scored_as_of,
        argMax(scored_at, as_of) AS current_scored_at,
        argMax(trigger, as_of) AS current_trigger,
        argMax(signals_timezone, as_of) AS current_tz,
        argMax(model_version, as_of) AS current_model
    FROM risk_updates
    WHERE {course:String} = '' OR user_id IN (SELECT user_id FROM behavior_events WHERE course_id = {course:String})
    GROUP BY user_id
) AS latest
WHERE current_risk_7d >= {min_risk:Float64}
    AND ({tier:String} = '' OR current_tier = {tier:String})
    AND ({tz:String} = '' OR current_tz = {tz:String})
ORDER BY
    if({sort:String} = 'user' AND {dir:String} = 'asc', user_id, '') ASC,
    if({sort:String} = 'user' AND {dir:String} = 'desc', user_id, '') DESC,
    multiIf({sort:String} = 'risk', current_risk_7d, {sort:String} = 'last_seen', toFloat64(toUInt32(last_seen)), 0)
        * if({dir:String} = 'desc', -1, 1),
    user_id
LIMIT {offset:UInt32}, {limit:UInt32}
