-- name: type_choice_returns
-- answers: Do students come back more often when the bandit chose their intervention type than when the policy
--   or an experiment did, or when they were held out? Per tier and chooser: 'bandit', 'experiment', 'policy'
--   (requests sent or deferred, by what picked the type; rows stored before the chooser was recorded were the
--   policy's) and 'held_out' (the policy's control group, nothing sent, whatever would have chosen). From the
--   decisions made from `from` to as_of: requests, distinct students, the requests whose 7 days are over by
--   as_of (eligible), how many of those the student came back after (an active day in the 7 UTC days after the
--   decision's day, as in intervention_effectiveness), and that share. A decision delivered twice counts once
--   (FINAL); with none eligible the share is NaN. The groups are not randomised against each other except the held-out one: a chooser's students
--   differ by tier mix and by what experiments cover, so compare within a tier.
-- param: from Date = today() - 90 | first decision day included
-- param: as_of Date = today() | data is complete up to this day
SELECT
    tier,
    chooser AS chosen_by,
    count() AS requests,
    uniqExact(user_id) AS students,
    countIf(over_7d) AS eligible_7d,
    countIf(over_7d AND returned) AS returned_7d,
    if(eligible_7d > 0, round(100 * returned_7d / eligible_7d, 1), nan) AS return_pct
FROM
(
    SELECT
        req.user_id AS user_id,
        req.tier AS tier,
        req.chooser AS chooser,
        req.decided_on + 7 <= toUInt32({as_of:Date}) AS over_7d,
        -- the 7 days after the decision, spelled out: 18.16 loses columns only a lambda refers to
        hasAny(act.active_days, [req.decided_on + 1, req.decided_on + 2, req.decided_on + 3, req.decided_on + 4,
                                 req.decided_on + 5, req.decided_on + 6, req.decided_on + 7]) AS returned
    FROM
    (
        SELECT
            user_id,
            tier,
            multiIf(status = 'held_out', 'held_out', chosen_by = '', 'policy', chosen_by) AS chooser,
            toUInt32(toDate(created_at)) AS decided_on
        FROM intervention_requests FINAL
        WHERE toDate(created_at) >= {from:Date} AND toDate(created_at) <= {as_of:Date}
    ) AS req
    ANY LEFT JOIN
    (
        SELECT user_id, groupArray(toUInt32(day)) AS active_days
        FROM
        (
            SELECT user_id, day
            FROM user_daily_activity
            WHERE day > {from:Date} AND day <= {as_of:Date}
            GROUP BY user_id, day
            HAVING maxMerge(active) = 1
        ) AS days
        GROUP BY user_id
    ) AS act USING user_id
) AS decisions
GROUP BY tier, chooser
ORDER BY
    indexOf(['critical', 'high', 'medium', 'low', 'minimal'], tier),
    indexOf(['bandit', 'experiment', 'policy', 'held_out'], chooser)
