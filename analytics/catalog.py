"""The named analyst queries: SQL files in ``analytics/queries`` with a header saying what each answers.

A file starts with comment lines::

    -- name: weekly_cohort_retention
    -- answers: Of the students whose cohort week is W, what share was active again in week W+N?
    -- param: weeks UInt32 = 8 | weeks after the cohort week to report
    -- param: cohort_by Enum(first_activity,enrolment) = 'first_activity' | how cohorts are formed

and uses its parameters in the body as ``{weeks:UInt32}`` (ClickHouse's own placeholder syntax). A default is
a SQL expression (``today() - 7``); a value given on the command line is checked against the type and
rendered as a typed literal, so a parameter can never inject SQL. Tables are named without a database: the
query runs with the engine's database selected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from importlib import resources

PLACEHOLDER = re.compile(r"\{(\w+):(\w+)\}")
_PARAM = re.compile(r"^(\w+)\s+(Date|DateTime|UInt32|Float64|String|Enum\([\w,]+\))\s*(?:=\s*(.+?))?\s*\|\s*(.+)$")


class QueryError(ValueError):
    """A query file or a parameter value that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: str | None  # a SQL expression
    description: str

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.type[5:-1].split(",")) if self.type.startswith("Enum(") else ()

    @property
    def base_type(self) -> str:
        return "String" if self.choices else self.type

    def literal(self, value: str) -> str:
        """``value`` (as typed on a command line) as a typed SQL literal; refuses anything not of the type."""
        try:
            if self.type == "Date":
                return f"toDate('{date.fromisoformat(value).isoformat()}')"
            if self.type == "DateTime":
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                return f"toDateTime('{moment.strftime('%Y-%m-%d %H:%M:%S')}', 'UTC')"
            if self.type == "UInt32":
                number = int(value)
                if not 0 <= number < 2**32:
                    raise ValueError("out of range")
                return str(number)  # a bare number: LIMIT takes nothing else on 18.16
            if self.type == "Float64":
                return f"toFloat64({float(value)!r})"
        except ValueError as exc:
            raise QueryError(f"parameter {self.name} wants a {self.type}, got {value!r} ({exc})") from None
        if self.choices and value not in self.choices:
            raise QueryError(f"parameter {self.name} must be one of {', '.join(self.choices)}; got {value!r}")
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    answers: str
    params: tuple[Param, ...]
    body: str

    def render(self, values: dict[str, str] | None = None) -> str:
        """The SQL with every placeholder replaced by a literal (given) or the default (not given)."""
        values = dict(values or {})
        declared = {p.name: p for p in self.params}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            known = ", ".join(declared) or "none"
            raise QueryError(f"{self.name} has no parameter {', '.join(unknown)}; its parameters: {known}")
        rendered: dict[str, str] = {}
        for p in self.params:
            if p.name in values:
                rendered[p.name] = p.literal(values[p.name])
            elif p.default is not None:
                rendered[p.name] = p.default if p.default.isdigit() else f"({p.default})"
            else:
                raise QueryError(f"{self.name} needs --param {p.name}=<{p.type}>: {p.description}")
        return PLACEHOLDER.sub(lambda m: rendered[m.group(1)], self.body)


def parse(text: str, source: str = "<query>") -> NamedQuery:
    header: list[str] = []
    lines = text.splitlines()
    while lines and lines[0].startswith("--"):
        header.append(lines.pop(0)[2:].strip())
    body = "\n".join(lines).strip()
    fields: dict[str, list[str]] = {"name": [], "answers": [], "param": []}
    key = None
    for line in header:
        head, sep, rest = line.partition(":")
        if sep and head in fields:
            key = head
            fields[key].append(rest.strip())
        elif key == "answers" and line:
            fields["answers"][-1] += " " + line
    if len(fields["name"]) != 1 or not fields["answers"]:
        raise QueryError(f"{source}: the header needs one '-- name:' line and an '-- answers:' line")
    params = []
    for spec in fields["param"]:
        m = _PARAM.match(spec)
        if m is None:
            raise QueryError(f"{source}: cannot read parameter line {spec!r} (want: NAME TYPE [= DEFAULT] | WHAT)")
        params.append(Param(m.group(1), m.group(2), m.group(3), m.group(4)))
    query = NamedQuery(fields["name"][0], fields["answers"][0], tuple(params), body)
    declared = {p.name: p.base_type for p in params}
    for name, typ in PLACEHOLDER.findall(body):
        if declared.get(name) != typ:
            raise QueryError(f"{source}: placeholder {{{name}:{typ}}} does not match a declared parameter")
    unused = set(declared) - {n for n, _ in PLACEHOLDER.findall(body)}
    if unused:
        raise QueryError(f"{source}: parameters declared but never used: {', '.join(sorted(unused))}")
    return query


def load_all() -> dict[str, NamedQuery]:
    """Every query shipped in ``analytics/queries``, by name."""
    out: dict[str, NamedQuery] = {}
    for entry in sorted(resources.files("analytics").joinpath("queries").iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql"):
            query = parse(entry.read_text(), entry.name)
            if query.name != entry.name.removesuffix(".sql"):
                raise QueryError(f"{entry.name}: the header names it {query.name!r}; name the file after it")
            out[query.name] = query
    return out


def get(name: str) -> NamedQuery:
    queries = load_all()
    if name not in queries:
        raise QueryError(f"no query named {name!r}; known: {', '.join(queries)}")
    return queries[name]
