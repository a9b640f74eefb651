-- name: prediction_calibration
-- answers: Does a 7-day risk of 80 mean about 80% of such students drop off? Per week and per 10-point
--   risk band: predictions, mean predicted risk and observed drop-off rate (same predictions and outcome
--   as prediction_accuracy: the view labelled_predictions). A calibrated model has mean_predicted_pct close
--   to observed_pct in every band.
-- param: from Date = today() - 84 | first prediction day included
-- param: as_of Date = today() | data is complete up to this day
SELECT
    toMonday(day) AS week,
    concat(toString(band * 10), '-', toString(band * 10 + 10)) AS risk_band,
    count() AS predictions,
    round(avg(score), 1) AS mean_predicted_pct,
    round(100 * countIf(dropped) / predictions, 1) AS observed_pct
FROM
(
    SELECT
        day,
        risk_7d AS score,
        least(toUInt32(floor(risk_7d / 10)), 9) AS band,
        unenrolled_within_7d OR next_active_on = 0 OR next_active_on > toUInt32({as_of:Date}) AS dropped
    FROM labelled_predictions
    WHERE day >= {from:Date} AND day + 7 <= {as_of:Date}
) AS labelled
GROUP BY week, band
ORDER BY week, band
