-- name: tier_transitions
-- answers: How did students move between risk tiers over one week? Each student's tier at the end of the
--   week before, against their tier at the end of the given week ('new' = no score before the week).
-- param: week Date = toMonday(today()) - 7 | any day of the week to compare with the week before
SELECT
    moves.from_tier AS from_tier,
    moves.to_tier AS to_tier,
    moves.students AS students,
    round(100 * moves.students / totals.from_total, 1) AS pct_of_from_tier
FROM
(
    SELECT from_tier, to_tier, count() AS students
    FROM
    (
        SELECT
            if(before_tier = '', 'new', before_tier) AS from_tier,
            after_tier AS to_tier
        FROM
        (
            SELECT
                user_id,
                argMaxIf(tier, as_of, day < toMonday({week:Date})) AS before_tier,
                argMax(tier, as_of) AS after_tier
            FROM user_daily_signals
            WHERE day < toMonday({week:Date}) + 7
            GROUP BY user_id
        ) AS per_student
    ) AS transitions
    GROUP BY from_tier, to_tier
) AS moves
ANY LEFT JOIN
(
    SELECT from_tier, count() AS from_total
    FROM
    (
        SELECT if(argMaxIf(tier, as_of, day < toMonday({week:Date})) = '', 'new',
                  argMaxIf(tier, as_of, day < toMonday({week:Date}))) AS from_tier
        FROM user_daily_signals
        WHERE day < toMonday({week:Date}) + 7
        GROUP BY user_id
    ) AS starts
    GROUP BY from_tier
) AS totals USING from_tier
ORDER BY
    indexOf(['new', 'critical', 'high', 'medium', 'low', 'minimal'], from_tier),
    indexOf(['critical', 'high', 'medium', 'low', 'minimal'], to_tier)
