-- name: prediction_accuracy
-- answers: How well did the 7-day risk score separate students who dropped off from those who stayed, week
--   by week? For every student-day snapshot whose 7-day horizon is over by as_of: the prediction is the
--   day's last 7-day risk, the outcome "dropped off" is the model's label (models/labels.py): unenrolled in
--   the 7 days after, or no active day after it up to as_of (a pause the student came back from is not a
--   drop-out); both come from the view labelled_predictions. Per week: ROC AUC (ties count half; scores
--   compared at 0.1 resolution), Brier score, and mean predicted risk against the observed drop-off rate
--   (calibration in the large; see prediction_calibration for the curve). Per week and model version: the
--   version is the one that made the day's last score (risk_updates), so a promotion splits its week in two.
-- param: from Date = today() - 84 | first prediction day included
-- param: as_of Date = today() | data is complete up to this day
SELECT
    week,
    model_version,
    predictions,
    positives,
    round(positives / predictions, 3) AS positive_rate,
    round(arraySum(arrayMap((p, cn, n) -> p * (cn - n + n / 2), pos, cum_neg, neg)) / (positives * negatives), 4)
        AS roc_auc,
    round(brier_sum / predictions, 4) AS brier,
    round(100 * predicted_sum / predictions, 1) AS mean_predicted_pct,
    round(100 * positives / predictions, 1) AS observed_pct
FROM
(
    SELECT
        week,
        model_version,
        sum(n_pos + n_neg) AS predictions,
        sum(n_pos) AS positives,
        sum(n_neg) AS negatives,
        sum(brier_part) AS brier_sum,
        sum(predicted_part) AS predicted_sum,
        arraySort(x -> tupleElement(x, 1), groupArray((score, n_pos, n_neg))) AS by_score,
        arrayMap(x -> tupleElement(x, 2), by_score) AS pos,
        arrayMap(x -> tupleElement(x, 3), by_score) AS neg,
        arrayCumSum(neg) AS cum_neg
    FROM
    (
        SELECT
            toMonday(day) AS week,
            model_version,
            score,
            countIf(dropped) AS n_pos,
            countIf(NOT dropped) AS n_neg,
            sum(pow(score / 100 - dropped, 2)) AS brier_part,
            sum(score / 100) AS predicted_part
        FROM
        (
            SELECT
                day,
                model_version,
                round(risk_7d, 1) AS score,
                unenrolled_within_7d OR next_active_on = 0 OR next_active_on > toUInt32({as_of:Date}) AS dropped
            FROM
            (
                SELECT user_id, day, risk_7d, unenrolled_within_7d, next_active_on
                FROM labelled_predictions
                WHERE day >= {from:Date} AND day + 7 <= {as_of:Date}
            ) AS predicted
            ANY LEFT JOIN
            (
                SELECT user_id, toDate(as_of) AS day, argMax(model_version, as_of) AS model_version
                FROM risk_updates FINAL
                WHERE toDate(as_of) >= {from:Date} AND toDate(as_of) + 7 <= {as_of:Date}
                GROUP BY user_id, day
            ) AS versions USING (user_id, day)
        ) AS labelled
        GROUP BY week, model_version, score
    ) AS by_week_score
    GROUP BY week, model_version
) AS weeks
ORDER BY week, model_version
