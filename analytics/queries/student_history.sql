-- name: student_history
-- answers: How did one student's risk and signals move, day by day? Per UTC day the student was scored, the
--   day's last risk update (user_daily_signals): 7- and 30-day risk, tier, current and longest streak, active days
--   and minutes on the platform in the last 7 days, lessons completed in the last 7 days, and the top factor in
--   words. For the admin dashboard's student page.
-- param: user String = '' | the student's user id
-- param: from Date = today() - 89 | first day reported
SELECT
    day,
    round(risk_7d, 1) AS risk_7d,
    round(risk_30d, 1) AS risk_30d,
    tier,
    signals_current_streak_days AS current_streak,
    signals_longest_streak_days AS longest_streak,
    signals_active_days_7d AS active_days_7d,
    round(signals_minutes_on_platform_7d, 1) AS minutes_7d,
    signals_lessons_completed_7d AS lessons_7d,
    arrayStringConcat(arraySlice(extractAll(factors, '"description":"([^"]*)"'), 1, 1), '') AS top_factor
FROM user_daily_signals FINAL
WHERE user_id = {user:String} AND day >= {from:Date}
ORDER BY day
