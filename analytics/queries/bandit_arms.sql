-- name: bandit_arms
-- answers: How is each arm of the bandit doing? Per tier, profile bucket ('(none)' when the decision had none)
--   and arm (the intervention type the bandit chose): the windows closed since `since` (one per bandit-chosen
--   intervention, a copy the worker re-sent counted once: FINAL), how many of those students came back within
--   the window (active after the send, as the worker judged it), the return rate, and the first and last window
--   close. Raw counts per context: the bandit's own posteriors also borrow from the tier's and the global level
--   (backoff), so its means differ from these rates where a context has few outcomes. The default, 90 days, is
--   what the bandit remembers (the bandit-outcomes topic's retention).
-- param: since Date = today() - 90 | first day of window closes included
SELECT
    tier,
    profile_bucket,
    arm,
    count() AS windows_closed,
    countIf(success = 1) AS returned,
    round(100 * returned / windows_closed, 1) AS return_pct,
    toString(min(at)) AS first_outcome,
    toString(max(at)) AS last_outcome
FROM
(
    SELECT tier, if(profile = '', '(none)', profile) AS profile_bucket, arm, success, at
    FROM bandit_outcomes FINAL
    WHERE toDate(at) >= {since:Date}
) AS closed
GROUP BY tier, profile_bucket, arm
ORDER BY
    indexOf(['critical', 'high', 'medium', 'low', 'minimal'], tier),
    profile_bucket,
    return_pct DESC,
    arm
