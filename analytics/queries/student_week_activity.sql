-- name: student_week_activity
-- answers: What did one student do on each of the 7 UTC days ending on as_of? Per day with any event: whether
--   it was an active day (the events that make a streak day), events, active events, lessons completed and
--   quizzes submitted (distinct event ids: a re-delivered event counts once). Days without events have no
--   row. The student page's weekly activity chart reads it.
-- param: user_id String = '' | the student
-- param: as_of Date = today() | the last day of the week shown
SELECT
    day,
    maxMerge(active) AS active,
    uniqExactMerge(events) AS events,
    uniqExactIfMerge(active_events) AS active_events,
    uniqExactIfMerge(lessons_completed) AS lessons_completed,
    uniqExactIfMerge(quizzes_submitted) AS quizzes_submitted
FROM user_daily_activity
WHERE day >= {as_of:Date} - 6 AND day <= {as_of:Date} AND user_id = {user_id:String}
GROUP BY day
ORDER BY day
