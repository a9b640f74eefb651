-- name: student_interventions
-- answers: What did the engine decide for one student, and what became of each decision? Every intervention
--   request (newest first): when, its status (send, deferred, held_out), type, tier, risk and reason, with what
--   came back for it from intervention_outcomes, each counted once however often it happened: sent, delivered,
--   opened (a click counts as an open), clicked, failed, returned within 7 days or not (null while unknown), and the
--   channel that delivered it. For the admin dashboard's student page.
-- param: user String = '' | the student's user id
-- param: limit UInt32 = 50 | at most this many decisions, newest first
SELECT
    requests.intervention_id AS intervention_id,
    requests.created_at AS created_at,
    requests.status AS status,
    requests.intervention_type AS intervention_type,
    requests.tier AS tier,
    round(requests.risk_7d, 1) AS risk_7d,
    requests.reason AS reason,
    requests.chosen_by AS chosen_by,
    ifNull(outcomes.was_sent, 0) AS sent,
    ifNull(outcomes.was_delivered, 0) AS delivered,
    ifNull(outcomes.was_opened, 0) AS opened,
    ifNull(outcomes.was_clicked, 0) AS clicked,
    ifNull(outcomes.was_failed, 0) AS failed,
    multiIf(ifNull(outcomes.was_returned, 0) = 1, 'yes', ifNull(outcomes.was_not_returned, 0) = 1, 'no', '') AS returned,
    ifNull(outcomes.delivered_by, '') AS channel
FROM
(
    SELECT intervention_id, any(created_at) AS created_at, any(status) AS status,
           any(intervention_type) AS intervention_type, any(tier) AS tier, any(risk_7d) AS risk_7d,
           any(reason) AS reason, any(chosen_by) AS chosen_by
    FROM intervention_requests
    WHERE user_id = {user:String}
    GROUP BY intervention_id
) AS requests
ANY LEFT JOIN
(
    SELECT
        intervention_id,
        max(outcome = 'sent') AS was_sent,
        max(outcome = 'delivered') AS was_delivered,
        max(outcome IN ('opened', 'clicked')) AS was_opened,
        max(outcome = 'clicked') AS was_clicked,
        max(outcome IN ('failed', 'dead_lettered')) AS was_failed,
        max(outcome = 'returned_within_7d') AS was_returned,
        max(outcome = 'not_returned_within_7d') AS was_not_returned,
        anyIf(channel, outcome = 'delivered') AS delivered_by
    FROM intervention_outcomes
    WHERE user_id = {user:String}
    GROUP BY intervention_id
) AS outcomes USING intervention_id
ORDER BY created_at DESC, intervention_id
LIMIT {limit:UInt32}
