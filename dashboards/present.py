"""What the pages show, worked out without I/O: the at-risk list's query parameters (checked, with a clear message
for bad input), pagination, and figures in words (trend, time ago)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from dashboards.charts import TIER_ORDER

SORTS = ("risk", "last_seen", "user")
DIRECTIONS = ("desc", "asc")
MAX_PAGE_SIZE = 200
MAX_FILTER_CHARS = 100


class BadRequest(ValueError):
    """A request the page cannot answer; the message says which parameter and what it takes."""


@dataclass(frozen=True)
class ListQuery:
    """The at-risk list's page, size, sort and filters, as the URL gives them."""

    page: int = 1
    size: int = 50
    sort: str = "risk"
    dir: str = "desc"
    tier: str = ""
    course: str = ""
    tz: str = ""

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> ListQuery:
        def whole(name: str, default: int, low: int, high: int) -> int:
            text = args.get(name, "").strip() or str(default)
            if not text.isdigit() or not low <= int(text) <= high:
                raise BadRequest(f"{name} must be a whole number from {low} to {high}; got {text!r}")
            return int(text)

        def choice(name: str, options: tuple[str, ...], default: str) -> str:
            value = args.get(name, "").strip() or default
            if value not in options:
                raise BadRequest(f"{name} must be one of {', '.join(o or 'empty' for o in options)}; got {value!r}")
            return value

        def text(name: str) -> str:
            value = args.get(name, "").strip()
            if len(value) > MAX_FILTER_CHARS:
                raise BadRequest(f"{name} is longer than {MAX_FILTER_CHARS} characters")
            return value

        return cls(
            page=whole("page", 1, 1, 10_000_000),
            size=whole("size", 50, 1, MAX_PAGE_SIZE),
            sort=choice("sort", SORTS, "risk"),
            dir=choice("dir", DIRECTIONS, "desc"),
            tier=choice("tier", ("", *TIER_ORDER), ""),
            course=text("course"),
            tz=text("tz"),
        )

    def filters(self) -> dict[str, str]:
        """The named queries' filter parameters (at_risk_page and at_risk_count)."""
        return {"tier": self.tier, "course": self.course, "tz": self.tz}

    def page_params(self, now: datetime) -> dict[str, str]:
        return {
            **self.filters(),
            "sort": self.sort,
            "dir": self.dir,
            "offset": str((self.page - 1) * self.size),
            "limit": str(self.size),
            "now": now.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def url(self, **changes: object) -> str:
        """This list's URL with some parameters changed (defaults left out)."""
        query = replace(self, **changes)  # type: ignore[arg-type]
        defaults = ListQuery()
        params = {k: v for k, v in vars(query).items() if v != getattr(defaults, k)}
        return "/admin/at-risk" + (f"?{urlencode(params)}" if params else "")

    def sort_url(self, column: str) -> str:
        """Sorting by a column: the other direction if it is the current sort, else its natural one."""
        if column == self.sort:
            return self.url(dir="asc" if self.dir == "desc" else "desc", page=1)
        return self.url(sort=column, dir="asc" if column == "user" else "desc", page=1)


def pages(total: int, size: int) -> int:
    return max(1, math.ceil(total / size))


def trend_words(change: float | None) -> tuple[str, str]:
    """(arrow, words) for a change of risk in points: ("↑", "up 12"), ("↓", "down 3.5"), ("→", "steady")."""
    if change is None or (isinstance(change, float) and math.isnan(change)):
        return "", "no earlier score"
    if abs(change) < 0.5:
        return "→", "steady"
    amount = f"{abs(change):.0f}" if abs(change) >= 10 else f"{abs(change):.1f}".rstrip("0").rstrip(".")
    return ("↑", f"up {amount}") if change > 0 else ("↓", f"down {amount}")


def ago(moment: datetime | str | None, now: datetime) -> str:
    """How long before ``now``, in words a person reads at a glance ("3 h ago", "12 days ago", "never")."""
    if moment in (None, ""):
        return "never"
    when = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    assert when is not None
    if when.tzinfo is None:
        when = when.replace(tzinfo=now.tzinfo)
    if when.year <= 1970:
        return "never"
    seconds = (now - when).total_seconds()
    if seconds < 0:
        return "just now"
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
