-- name: intervention_effectiveness
-- answers: Do interventions bring students back? Per intervention type and tier: the share of treated
--   decisions (sent or deferred) whose student was active within 7 days after the decision, against the
--   held-out control group (same policy decision, nothing sent), the uplift in percentage points and its
--   95% confidence interval (normal approximation for a difference of two proportions). Only decisions
--   whose 7 days are over by as_of count. Active days as in weekly_cohort_retention (UTC days after the
--   decision's day). Engagement with the messages of treated decisions, from intervention_outcomes (tracking
--   back: opens, clicks, provider delivery reports, in-app reads): delivered, opened (a click counts as an open:
--   images may be blocked), clicked, each counted once per decision however often it happened, and the open and
--   click rates as shares of treated decisions. Discount offers: codes issued and redeemed (by the desk's
--   outcomes), and the redemption rate as a share of the codes issued.
-- param: from Date = today() - 90 | first decision day included
-- param: as_of Date = today() | data is complete up to this day
SELECT
    intervention_type,
    tier,
    treated,
    treated_returned,
    holdout,
    holdout_returned,
    round(100 * p_treated, 1) AS treated_return_pct,
    round(100 * p_holdout, 1) AS holdout_return_pct,
    round(100 * (p_treated - p_holdout), 1) AS uplift_pts,
    round(100 * (p_treated - p_holdout - 1.96 * std_err), 1) AS ci_low_pts,
    round(100 * (p_treated - p_holdout + 1.96 * std_err), 1) AS ci_high_pts,
    delivered,
    opened,
    clicked,
    round(100 * opened / treated, 1) AS open_rate_pct,
    round(100 * clicked / treated, 1) AS click_rate_pct,
    offers_issued,
    offers_redeemed,
    if(offers_issued > 0, round(100 * offers_redeemed / offers_issued, 1), nan) AS redemption_rate_pct
FROM
(
    SELECT
        intervention_type,
        tier,
        countIf(arm = 'treated') AS treated,
        countIf(arm = 'treated' AND returned) AS treated_returned,
        countIf(arm = 'holdout') AS holdout,
        countIf(arm = 'holdout' AND returned) AS holdout_returned,
        countIf(arm = 'treated' AND was_delivered) AS delivered,
        countIf(arm = 'treated' AND (was_opened OR was_clicked)) AS opened,
        countIf(arm = 'treated' AND was_clicked) AS clicked,
        countIf(arm = 'treated' AND was_issued) AS offers_issued,
        countIf(arm = 'treated' AND was_redeemed) AS offers_redeemed,
        treated_returned / treated AS p_treated,
        holdout_returned / holdout AS p_holdout,
        sqrt(p_treated * (1 - p_treated) / treated + p_holdout * (1 - p_holdout) / holdout) AS std_err
    FROM
    (
        SELECT
            intervention_type,
            tier,
            arm,
            returned,
            was_delivered,
            was_opened,
            was_clicked,
            was_issued,
            was_redeemed
        FROM
        (
            SELECT
                req.intervention_id AS intervention_id,
                req.intervention_type AS intervention_type,
                req.tier AS tier,
                req.arm AS arm,
                -- the 7 days after the decision, spelled out: 18.16 loses columns only a lambda refers to
                hasAny(act.active_days, [req.decided_on + 1, req.decided_on + 2, req.decided_on + 3, req.decided_on + 4,
                                         req.decided_on + 5, req.decided_on + 6, req.decided_on + 7]) AS returned
            FROM
            (
                SELECT
                    user_id,
                    intervention_id,
                    intervention_type,
                    tier,
                    if(status = 'held_out', 'holdout', 'treated') AS arm,
                    toUInt32(toDate(created_at)) AS decided_on
                FROM intervention_requests FINAL
                WHERE toDate(created_at) >= {from:Date} AND toDate(created_at) + 7 <= {as_of:Date}
            ) AS req
            ANY LEFT JOIN
            (
                SELECT user_id, groupArray(toUInt32(day)) AS active_days
                FROM
                (
                    SELECT user_id, day
                    FROM user_daily_activity
                    WHERE day >= {from:Date}
                    GROUP BY user_id, day
                    HAVING maxMerge(active) = 1
                ) AS days
                GROUP BY user_id
            ) AS act USING user_id
        ) AS decided
        ANY LEFT JOIN
        (
            -- what became of each message, once per decision (a repeated open is one); none: all 0
            SELECT
                intervention_id,
                max(outcome = 'delivered') AS was_delivered,
                max(outcome = 'opened') AS was_opened,
                max(outcome = 'clicked') AS was_clicked,
                max(outcome = 'offer_issued') AS was_issued,
                max(outcome = 'offer_redeemed') AS was_redeemed
            FROM intervention_outcomes
            WHERE toDate(at) >= {from:Date}
            GROUP BY intervention_id
        ) AS engaged USING intervention_id
    ) AS decisions
    GROUP BY intervention_type, tier
) AS arms
ORDER BY
    indexOf(['critical', 'high', 'medium', 'low', 'minimal'], tier),
    intervention_type
