"""Gamification messages (PRODUCT.md §7): XP awards, level-ups, achievement unlocks, celebrations, standings.

Every id is deterministic, built from what caused the message, so a replay or a re-delivery produces the same
id and the sinks' ReplacingMergeTree tables (and any consumer) keep one copy:
- an award: ``{user_id}:{event_id}:{rule_id}`` (an event earns a rule's XP at most once; a first-activity-of-the-day
  award is the day's first event's; a streak bonus uses ``streak:{milestone id}`` as its event part);
- a level-up: ``{user_id}:level:{level}``;
- an unlock: ``{user_id}:{achievement_id}`` (each achievement unlocks once per student);
- a celebration: ``{kind}:{the id of what it celebrates}``.

XP awards travel as an ``XpAwardBatch``: one message per student and events message, holding that batch's
awards as compact rows (``AWARD_FIELDS``). About one award is earned for every three events, and a message per
award made sending them the largest part of what gamification cost the worker; the sink stores one ``xp_awards``
row per award (``XpAwardBatch.rows``), as before.

A ``Standing`` is a student's XP on every leaderboard they are on, sent after each batch that changed it; the
leaderboard service keeps the newest per student (the topic is compacted by user id).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier

GAMIFICATION_SCHEMA_VERSION: Literal[1] = 1


def award_id(user_id: str, source: str, rule_id: str) -> str:
    return f"{user_id}:{source}:{rule_id}"


def level_up_id(user_id: str, level: int) -> str:
    return f"{user_id}:level:{level}"


def unlock_id(user_id: str, achievement_id: str) -> str:
    return f"{user_id}:{achievement_id}"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = GAMIFICATION_SCHEMA_VERSION


class XpAward(_Message):
    """XP one rule gave a student for one event (or for an active day, or a streak milestone)."""

    award_id: str = Field(description="f'{user_id}:{source}:{rule_id}', stable under replays")
    user_id: Identifier
    rule_id: str
    rules_version: int = Field(description="the version of the rules file that priced it")
    source: str = Field(description="the event id, or 'streak:{milestone id}' for a streak bonus")
    course_id: str = Field("", description="the event's course, '' when it has none")
    xp: int = Field(ge=0, description="what was added to the student's total (base x multiplier, rounded)")
    base_xp: int = Field(ge=0)
    multiplier: float = Field(ge=1.0, description="the streak multiplier in force, 1.0 when none")
    total_xp: int = Field(ge=0, description="the student's all-time XP after this award")
    local_day: date = Field(description="the student's local date of the event (what daily caps count in)")
    event_time: AwareDatetime


AWARD_FIELDS = ("rule_id", "source", "course_id", "xp", "base_xp", "multiplier", "total_xp", "local_day", "event_time")
# One award in a batch: the ``XpAward`` fields above, in this order; the batch carries user_id and rules_version.
AwardEntry = tuple[str, str, str, int, int, float, int, date, AwareDatetime]


class XpAwardBatch(_Message):
    """The XP awards one student earned from one events message, in the order they were earned."""

    user_id: Identifier
    rules_version: int = Field(description="the version of the rules file that priced them")
    awards: list[AwardEntry] = Field(min_length=1, description=f"rows of {', '.join(AWARD_FIELDS)}")

    def expand(self) -> list[XpAward]:
        """One ``XpAward`` per award, each with its id."""
        return [XpAward.model_validate(row) for row in award_rows(self.model_dump(mode="json"))]


def award_rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """An ``XpAwardBatch`` as decoded JSON -> one ``XpAward``-shaped dict per award (values as in the JSON).

    The sink's fan-out and the readers of the topic use this; it checks the shape, not the values (``expand``
    validates)."""
    user, version, entries = batch["user_id"], batch["rules_version"], batch["awards"]
    if not isinstance(entries, list) or not entries:
        raise ValueError("awards: expected a non-empty list")
    out = []
    for entry in entries:
        if not isinstance(entry, list | tuple) or len(entry) != len(AWARD_FIELDS):
            raise ValueError(f"awards: expected rows of {len(AWARD_FIELDS)} values ({', '.join(AWARD_FIELDS)})")
        row = dict(zip(AWARD_FIELDS, entry, strict=True))
        row["schema_version"] = batch.get("schema_version", GAMIFICATION_SCHEMA_VERSION)
        row["award_id"] = award_id(user, row["source"], row["rule_id"])
        row["user_id"], row["rules_version"] = user, version
        out.append(row)
    return out


def award_entry(award: XpAward) -> tuple[Any, ...]:
    """An award as a batch row (``AWARD_FIELDS``): for tests and tools that build batches from awards."""
    return tuple(getattr(award, name) for name in AWARD_FIELDS)


class LevelUp(_Message):
    level_up_id: str = Field(description="f'{user_id}:level:{level}'")
    user_id: Identifier
    level: int = Field(ge=2)
    total_xp: int = Field(ge=0)
    event_time: AwareDatetime = Field(description="event time of the event whose XP crossed the threshold")


class AchievementUnlocked(_Message):
    unlock_id: str = Field(description="f'{user_id}:{achievement_id}'")
    user_id: Identifier
    achievement_id: str
    name: str
    description: str
    rules_version: int
    event_time: AwareDatetime = Field(description="event time of the event that completed it")
    first_seen: AwareDatetime | None = Field(None, description="the student's first event: for time-to-unlock")
    backfilled: bool = Field(False, description="unlocked by `engage gamification backfill` from the warehouse")


class CelebrationKind(StrEnum):
    streak_milestone = "streak_milestone"
    level_up = "level_up"
    achievement = "achievement"


class Celebration(_Message):
    """Something to congratulate the student on, for the in-app inbox and notifications."""

    celebration_id: str = Field(description="f'{kind}:{source_id}'")
    user_id: Identifier
    kind: CelebrationKind
    source_id: str = Field(description="the milestone, level-up or unlock id")
    title: str
    body: str
    event_time: AwareDatetime


class BoardXp(BaseModel):
    """XP on one scope's boards: all-time, the UTC day and the ISO week (UTC) of the newest award, and the week
    before that one when the student earned XP in it (the leagues close a week after a grace: a service rebuilt
    from the standings during it still knows the XP of the week being closed)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    total: int = Field(ge=0)
    day: date = Field(description="UTC date of ``day_xp``")
    day_xp: int = Field(ge=0)
    week: str = Field(pattern=r"^\d{4}-W\d{2}$", description="ISO week (UTC) of ``week_xp``, e.g. 2026-W49")
    week_xp: int = Field(ge=0)
    previous_week: str | None = Field(
        None, pattern=r"^\d{4}-W\d{2}$", description="the ISO week just before ``week``, when it had XP"
    )
    previous_week_xp: int = Field(0, ge=0, description="XP earned in ``previous_week``")


class Standing(_Message):
    """A student's XP on every board they are on: global, and per course under its id."""

    user_id: Identifier
    level: int = Field(ge=1)
    global_xp: BoardXp
    courses: dict[str, BoardXp] = Field(default_factory=dict)
    seq: int = Field(ge=0, description="increases with every standing of this student: newer replaces older")


class LeaderboardRow(_Message):
    """One row of a leaderboard snapshot (``engage leaderboards`` writes the top of each board periodically)."""

    snapshot_id: str = Field(description="f'{board}:{period}:{taken_at}:{position}' (position 1..N: tied ranks repeat)")
    board: str = Field(description="'global' or 'course:{course_id}'")
    period: str = Field(description="'all', a UTC date 2026-12-05 or an ISO week 2026-W49")
    taken_at: AwareDatetime
    rank: int = Field(ge=1)
    user_id: Identifier
    xp: int = Field(ge=0)


class LeagueTier(StrEnum):
    """The weekly league tiers, lowest first: a new student starts in the first."""

    bronze = "bronze"
    silver = "silver"
    gold = "gold"
    sapphire = "sapphire"
    ruby = "ruby"
    emerald = "emerald"
    amethyst = "amethyst"
    pearl = "pearl"
    obsidian = "obsidian"
    diamond = "diamond"


class LeagueOutcome(StrEnum):
    promoted = "promoted"
    stayed = "stayed"
    demoted = "demoted"


def league_result_id(user_id: str, week: str) -> str:
    return f"{user_id}:league:{week}"


class LeagueResult(_Message):
    """How a student finished a closed week in their league group (``processors.gamification.leagues``).

    Published once per student with XP that week, when the week closes; every field follows from the standings
    and the tiers before the week, so a second publication (another service process, a restart) is the same
    message. The compacted league-results topic keeps the newest per student: ``next_tier`` is their tier now."""

    league_result_id: str = Field(description="f'{user_id}:league:{week}'")
    user_id: Identifier
    week: str = Field(pattern=r"^\d{4}-W\d{2}$", description="the ISO week (UTC) played, e.g. 2026-W49")
    week_start: date = Field(description="the Monday (UTC) the week began")
    tier: LeagueTier = Field(description="the tier the student played the week in")
    group_id: str = Field(description="f'{week}:{tier}:{n}', the n-th group of that tier that week")
    group_size: int = Field(ge=1)
    rank: int = Field(ge=1, description="1..group_size: by week XP, ties by the placement hash")
    week_xp: int = Field(ge=0, description="global XP earned in the week")
    outcome: LeagueOutcome
    next_tier: LeagueTier = Field(description="the tier for the weeks after (the student's current tier)")
