-- name: prediction_calibration
-- answers: Does a 7-day risk of 80 mean about 80% of such students drop off? Per week and per 10-point
--   risk band: predictions, mean predicted risk and observed drop-off rate (same predictions and outcome
--   as prediction_accuracy). A calibrated model has mean_predicted_pct close to observed_pct in every band.
-- param: from Date = today() - 84 | first prediction day included
-- param: as_of Date = today() | data is complete up to this day
SELECT
    toMonday(toDate('1970-01-01') + predicted_on) AS week,
    concat(toString(band * 10), '-', toString(band * 10 + 10)) AS risk_band,
    count() AS predictions,
    round(avg(score), 1) AS mean_predicted_pct,
    round(100 * countIf(dropped) / predictions, 1) AS observed_pct
FROM
(
    SELECT
        snap.predicted_on AS predicted_on,
        snap.score AS score,
        least(toUInt32(floor(snap.score / 10)), 9) AS band,
        arrayExists(x -> x > snap.predicted_on AND x <= snap.predicted_on + 7, act.unenrol_days)
            OR NOT arrayExists(x -> x > snap.predicted_on AND x <= toUInt32({as_of:Date}), act.active_days)
            AS dropped
    FROM
    (
        SELECT user_id, toUInt32(day) AS predicted_on, risk_7d AS score
        FROM user_daily_signals FINAL
        WHERE day >= {from:Date} AND day + 7 <= {as_of:Date}
    ) AS snap
    ANY LEFT JOIN
    (
        SELECT
            user_id,
            groupArrayIf(d, kind = 'active') AS active_days,
            groupArrayIf(d, kind = 'unenrolled') AS unenrol_days
        FROM
        (
            SELECT user_id, toUInt32(day) AS d, 'active' AS kind
            FROM
            (
                SELECT user_id, day
                FROM user_daily_activity
                WHERE day > {from:Date}
                GROUP BY user_id, day
                HAVING maxMerge(active) = 1
            ) AS days
            UNION ALL
            SELECT user_id, toUInt32(toDate(event_time)) AS d, 'unenrolled' AS kind
            FROM behavior_events FINAL
            WHERE event_type = 'unenrolled' AND toDate(event_time) > {from:Date}
        ) AS outcomes
        GROUP BY user_id
    ) AS act USING user_id
) AS labelled
GROUP BY week, band
ORDER BY week, band
