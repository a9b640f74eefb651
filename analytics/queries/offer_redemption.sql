-- name: offer_redemption
-- answers: Do discount offers get used? Per week of issue (weeks start on Monday, UTC): offers issued, offers
--   redeemed by the end of as_of, the redemption rate in percent, and the median hours from issue to
--   redemption (0 while none is redeemed; for an even count, the upper of the two middle values). From the
--   desk's offer_issued and offer_redeemed outcomes; an outcome delivered twice counts once.
-- param: from Date = today() - 90 | first day of issue included
-- param: as_of Date = today() | issues and redemptions up to the end of this day count
SELECT
    toMonday(issued_at) AS week,
    count() AS issued,
    countIf(is_redeemed) AS redeemed,
    round(100 * redeemed / issued, 1) AS redemption_pct,
    round(quantileExactIf(0.5)(seconds_to_redeem, is_redeemed) / 3600, 1) AS median_hours_to_redeem
FROM
(
    SELECT
        iss.issued_at AS issued_at,
        toUInt32(red.redeemed_at) > 0 AND toDate(red.redeemed_at) <= {as_of:Date} AS is_redeemed,
        toInt64(toUInt32(red.redeemed_at)) - toInt64(toUInt32(iss.issued_at)) AS seconds_to_redeem
    FROM
    (
        SELECT intervention_id, min(at) AS issued_at
        FROM intervention_outcomes
        WHERE outcome = 'offer_issued' AND toDate(at) >= {from:Date} AND toDate(at) <= {as_of:Date}
        GROUP BY intervention_id
    ) AS iss
    ANY LEFT JOIN
    (
        SELECT intervention_id, min(at) AS redeemed_at
        FROM intervention_outcomes
        WHERE outcome = 'offer_redeemed'
        GROUP BY intervention_id
    ) AS red USING intervention_id
) AS offers
GROUP BY week
ORDER BY week
