-- name: outreach_sla
-- answers: Does the success team reach critical students in time? Per week items entered the outreach
--   queue (weeks start on Monday, UTC): items queued, claimed and resolved by the end of as_of, resolved by
--   their request's deadline (the SLA) and its share of the queued, overdue (the deadline passed by as_of
--   without a resolution in time: resolved late or not at all), and the median minutes from queueing to the
--   first claim and to the resolution (0 while there is none; for an even count, the upper middle value).
--   From the desk's queued, claimed and resolved outcomes and the requests' deadlines.
-- param: from Date = today() - 90 | first day items were queued included
-- param: as_of Date = today() | claims and resolutions up to the end of this day count
SELECT
    toMonday(queued_at) AS week,
    count() AS queued,
    countIf(is_claimed) AS claimed,
    countIf(is_resolved) AS resolved,
    countIf(in_sla) AS resolved_in_sla,
    countIf(toDate(deadline) <= {as_of:Date} AND NOT in_sla) AS overdue,
    round(100 * resolved_in_sla / queued, 1) AS sla_pct,
    round(quantileExactIf(0.5)(seconds_to_claim, is_claimed) / 60, 1) AS median_minutes_to_claim,
    round(quantileExactIf(0.5)(seconds_to_resolve, is_resolved) / 60, 1) AS median_minutes_to_resolve
FROM
(
    SELECT
        items.queued_at AS queued_at,
        req.deadline AS deadline,
        toUInt32(items.claimed_at) > 0 AND toDate(items.claimed_at) <= {as_of:Date} AS is_claimed,
        toUInt32(items.resolved_at) > 0 AND toDate(items.resolved_at) <= {as_of:Date} AS is_resolved,
        is_resolved AND items.resolved_at <= req.deadline AS in_sla,
        toInt64(toUInt32(items.claimed_at)) - toInt64(toUInt32(items.queued_at)) AS seconds_to_claim,
        toInt64(toUInt32(items.resolved_at)) - toInt64(toUInt32(items.queued_at)) AS seconds_to_resolve
    FROM
    (
        SELECT
            intervention_id,
            minIf(at, outcome = 'queued') AS queued_at,
            minIf(at, outcome = 'claimed') AS claimed_at,
            minIf(at, outcome = 'resolved') AS resolved_at
        FROM intervention_outcomes
        WHERE outcome IN ('queued', 'claimed', 'resolved')
        GROUP BY intervention_id
    ) AS items
    ANY INNER JOIN
    (
        SELECT intervention_id, any(deadline) AS deadline
        FROM intervention_requests
        WHERE intervention_type = 'human_outreach'
        GROUP BY intervention_id
    ) AS req USING intervention_id
    WHERE toUInt32(items.queued_at) > 0
        AND toDate(items.queued_at) >= {from:Date} AND toDate(items.queued_at) <= {as_of:Date}
) AS sla
GROUP BY week
ORDER BY week
