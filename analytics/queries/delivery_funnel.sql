-- name: delivery_funnel
-- answers: Where do messages get lost, per channel? Of the treated decisions (sent or deferred) made since from,
--   per channel a message went out on: decisions sent, delivered, opened (a click counts as an open), clicked and
--   the student returned within 7 days, each decision counted once per step however often it happened. Channel
--   from the outcomes themselves (the 'sent' outcome names it); returns are per decision, credited to every
--   channel it went out on.
-- param: from Date = today() - 90 | first decision day included
SELECT
    channel,
    uniqExact(intervention_id) AS sent,
    uniqExactIf(intervention_id, was_delivered) AS delivered,
    uniqExactIf(intervention_id, was_opened) AS opened,
    uniqExactIf(intervention_id, was_clicked) AS clicked,
    uniqExactIf(intervention_id, was_returned) AS returned
FROM
(
    SELECT sends.intervention_id AS intervention_id, sends.channel AS channel, was_delivered, was_opened, was_clicked,
           was_returned
    FROM
    (
        SELECT DISTINCT intervention_id, channel
        FROM intervention_outcomes
        WHERE outcome = 'sent' AND channel != '' AND toDate(at) >= {from:Date}
    ) AS sends
    ANY LEFT JOIN
    (
        SELECT
            intervention_id,
            max(outcome = 'delivered') AS was_delivered,
            max(outcome IN ('opened', 'clicked')) AS was_opened,
            max(outcome = 'clicked') AS was_clicked,
            max(outcome = 'returned_within_7d') AS was_returned
        FROM intervention_outcomes
        WHERE toDate(at) >= {from:Date}
        GROUP BY intervention_id
    ) AS steps USING intervention_id
) AS per_send
GROUP BY channel
ORDER BY sent DESC, channel
