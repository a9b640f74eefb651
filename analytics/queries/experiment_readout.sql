-- name: experiment_readout
-- answers: How did each variant of one experiment do? Per variant, the students exposed (the unit: each counted
--   once, from their first exposure) and their conversions: returned within 7 days (an active day in the 7 UTC
--   days after the first exposure's day; only students whose 7 days are over by as_of are eligible), opened and
--   clicked (a message the experiment shaped, i.e. an intervention recorded in one of the student's exposures, was
--   opened or clicked; a click counts as an open), retained 30 days (an active day in days 24-30 after the first
--   exposure, the month's last week; eligible once the 30 days are over). Guardrails, since the first exposure:
--   students who unsubscribed (contact changes are not in ClickHouse: counted from intervention_outcomes whose
--   message failed or was dead-lettered because the student unsubscribed, detail mentioning "unsubscribe"),
--   and messages sent ('sent' outcomes of any intervention, per student: notification volume). Counted, never
--   attributed: opens and clicks of messages no exposure of the experiment records, for students whose exposures
--   name messages (outcomes_without_exposure), and students exposed to more than one variant: their row has
--   variant '(several)' and is left out of every comparison. The Python layer (analytics/experiments.py) adds the
--   lifts, intervals, chance to beat control and the sample-ratio check.
-- param: experiment String = '' | the experiment key (deploy/policy/experiments.json)
-- param: as_of Date = today() | data is complete up to this day
SELECT
    variant,
    count() AS exposed,
    toString(min(first_at)) AS first_exposure,
    toString(max(first_at)) AS last_first_exposure,
    countIf(over_7d) AS eligible_7d,
    countIf(over_7d AND returned) AS returned_7d,
    countIf(was_opened) AS opened,
    countIf(was_clicked) AS clicked,
    countIf(over_30d) AS eligible_30d,
    countIf(over_30d AND retained) AS retained_30d,
    countIf(has_unsubscribed) AS unsubscribed,
    sum(messages_sent) AS notifications_sent,
    sum(orphans) AS outcomes_without_exposure
FROM
(
    SELECT
        stu.user_id AS user_id,
        stu.variant AS variant,
        stu.first_at AS first_at,
        stu.first_day + 7 <= toUInt32({as_of:Date}) AS over_7d,
        stu.first_day + 30 <= toUInt32({as_of:Date}) AS over_30d,
        -- the days spelled out: 18.16 loses columns only a lambda refers to
        hasAny(act.active_days, [stu.first_day + 1, stu.first_day + 2, stu.first_day + 3, stu.first_day + 4,
                                 stu.first_day + 5, stu.first_day + 6, stu.first_day + 7]) AS returned,
        hasAny(act.active_days, [stu.first_day + 24, stu.first_day + 25, stu.first_day + 26, stu.first_day + 27,
                                 stu.first_day + 28, stu.first_day + 29, stu.first_day + 30]) AS retained
    FROM
    (
        -- one row per exposed student: their variant, first exposure
        SELECT
            user_id,
            if(uniqExact(variant) = 1, any(variant), '(several)') AS variant,
            min(at) AS first_at,
            toUInt32(toDate(min(at))) AS first_day
        FROM experiment_exposures FINAL
        WHERE experiment = {experiment:String} AND toDate(at) <= {as_of:Date}
        GROUP BY user_id
    ) AS stu
    ANY LEFT JOIN
    (
        SELECT user_id, groupArray(toUInt32(day)) AS active_days
        FROM
        (
            SELECT user_id, day
            FROM user_daily_activity
            WHERE day <= {as_of:Date} AND user_id IN
                (SELECT user_id FROM experiment_exposures WHERE experiment = {experiment:String})
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS days
        GROUP BY user_id
    ) AS act USING user_id
) AS students
ANY LEFT JOIN
(
    -- what became of each exposed student's messages since their first exposure
    SELECT
        user_id,
        max(is_exposed AND outcome IN ('opened', 'clicked')) AS was_opened,
        max(is_exposed AND outcome = 'clicked') AS was_clicked,
        countIf(outcome = 'sent') AS messages_sent,
        max(outcome IN ('failed', 'dead_lettered') AND position(lower(detail), 'unsubscribe') > 0) AS has_unsubscribed,
        countIf(NOT is_exposed AND names_messages AND outcome IN ('opened', 'clicked')) AS orphans
    FROM
    (
        SELECT
            o.user_id AS user_id,
            o.outcome AS outcome,
            o.detail AS detail,
            has(e.shaped, o.intervention_id) AS is_exposed,
            notEmpty(e.shaped) AS names_messages
        FROM
        (
            SELECT user_id, intervention_id, outcome, detail, at
            FROM intervention_outcomes FINAL
            WHERE toDate(at) <= {as_of:Date} AND user_id IN
                (SELECT user_id FROM experiment_exposures WHERE experiment = {experiment:String})
        ) AS o
        ALL INNER JOIN
        (
            SELECT user_id, min(at) AS first_at, groupUniqArrayIf(intervention_id, intervention_id != '') AS shaped
            FROM experiment_exposures FINAL
            WHERE experiment = {experiment:String} AND toDate(at) <= {as_of:Date}
            GROUP BY user_id
        ) AS e USING user_id
        WHERE o.at >= e.first_at
    ) AS since_exposure
    GROUP BY user_id
) AS msgs USING user_id
GROUP BY variant
ORDER BY variant
