-- name: achievement_retention
-- answers: Are students who unlock an achievement early retained better than those who do not? The cohort:
--   students whose first event (first_seen, its UTC day is day 0) is from `from` on, and whose day 59 is at
--   the latest as_of. Per achievement: the students of the cohort who unlocked it before day 30, and the
--   students who did not (not yet, or later), with the share of each group active again in days 30 to 59
--   (an active day in user_daily_activity), and the difference in points. An unlock delivered twice counts
--   once (FINAL). CAUTION: this is correlation, not cause. Students who would stay anyway unlock more (they
--   study more); counting only unlocks before day 30 keeps staying longer from earning the unlock, but not
--   motivation from driving both. Read a difference as a question for an experiment (award it, or not, to a
--   random group), never as the achievement's effect.
-- param: from Date = today() - 180 | first day 0 (first_seen day) of the cohort
-- param: as_of Date = today() | data is complete up to this day; students whose day 59 is later are left out
SELECT
    achievement_id,
    achievement_name,
    cohort,
    unlocked,
    round(100 * unlocked_retained / unlocked, 1) AS unlocked_retained_pct,
    cohort - unlocked AS not_unlocked,
    round(100 * (cohort_retained - unlocked_retained) / not_unlocked, 1) AS not_unlocked_retained_pct,
    round(unlocked_retained_pct - not_unlocked_retained_pct, 1) AS difference_pts
FROM
(
    SELECT
        1 AS k,
        achievement_id,
        any(name) AS achievement_name,
        count() AS unlocked,
        sum(retained) AS unlocked_retained
    FROM
    (
        SELECT achievement_id, name, unlocked_on, first_day, retained
        FROM
        (
            SELECT user_id, achievement_id, name, toDate(event_time) AS unlocked_on
            FROM achievements_unlocked FINAL
        ) AS unlocks
        ALL INNER JOIN
        (
            SELECT user_id, first_day, max(is_active AND day >= first_day + 30 AND day < first_day + 60) AS retained
            FROM
            (
                SELECT user_id, day, maxMerge(active) AS is_active
                FROM user_daily_activity
                GROUP BY user_id, day
            ) AS days
            ANY LEFT JOIN
            (
                SELECT user_id, min(day) AS first_day
                FROM user_daily_activity
                GROUP BY user_id
            ) AS firsts USING user_id
            WHERE first_day >= {from:Date} AND first_day + 59 <= {as_of:Date}
            GROUP BY user_id, first_day
        ) AS students USING user_id
    ) AS early
    WHERE unlocked_on < first_day + 30
    GROUP BY achievement_id
) AS per_achievement
ANY LEFT JOIN
(
    SELECT 1 AS k, count() AS cohort, sum(retained) AS cohort_retained
    FROM
    (
        SELECT user_id, first_day, max(is_active AND day >= first_day + 30 AND day < first_day + 60) AS retained
        FROM
        (
            SELECT user_id, day, maxMerge(active) AS is_active
            FROM user_daily_activity
            GROUP BY user_id, day
        ) AS days
        ANY LEFT JOIN
        (
            SELECT user_id, min(day) AS first_day
            FROM user_daily_activity
            GROUP BY user_id
        ) AS firsts USING user_id
        WHERE first_day >= {from:Date} AND first_day + 59 <= {as_of:Date}
        GROUP BY user_id, first_day
    ) AS students
) AS totals USING k
ORDER BY achievement_id
