-- name: student_course_progress
-- answers: How far is one student in each of their courses? Per course they have an enrolment, a progress
--   report or a completed lesson in: the latest reported progress (percent) with the lessons completed and the
--   lessons in the course at that report, and how many progress reports there were (0: none yet, progress
--   0). Courses whose latest enrolment event is an unenrolment are left out. The student page reads it.
-- param: user_id String = '' | the student
SELECT
    course_id,
    argMaxIf(progress_pct, event_time, event_type = 'course_progress') AS progress_pct,
    argMaxIf(lessons_completed, event_time, event_type = 'course_progress') AS lessons_completed,
    argMaxIf(lessons_total, event_time, event_type = 'course_progress') AS lessons_total,
    countIf(event_type = 'course_progress') AS progress_reports
FROM behavior_events FINAL
WHERE user_id = {user_id:String}
    AND event_type IN ('enrolled', 'unenrolled', 'course_progress', 'lesson_completed')
    AND course_id != ''
GROUP BY course_id
HAVING argMaxIf(event_type, event_time, event_type IN ('enrolled', 'unenrolled')) != 'unenrolled'
ORDER BY course_id
