"""Message templates per intervention type x channel x locale: loaded, checked and rendered (Jinja2, sandboxed).

Layout, beside the policy (``deploy/templates/``)::

    <intervention type>/<channel>.<locale>.j2      e.g. streak_warning/push.de.j2, gentle_reminder/email.pt-BR.j2
    _shared/*.j2                                   macros a template imports inside a block (not messages)

A template file holds one ``{% block %}`` per part of its channel's message (``CHANNEL_PARTS``): email
``subject``, ``text`` and ``html``; push ``title`` and ``body``; SMS ``body``; in-app ``title`` and ``body``. Each
part is rendered on its own; a macro of ``_shared/`` is imported inside the block that uses it (a block rendered
alone does not see top-level imports). Single-line parts (everything but ``text`` and ``html``) have their
whitespace collapsed, so a long sentence may be wrapped in the source.

Rendering: ``ImmutableSandboxedEnvironment`` (a template reads its context and cannot change it, nor reach
Python internals); the ``html`` part is rendered with autoescape on, every other part with it off (plain text
must not show ``&amp;``). ``StrictUndefined``: a variable this student's context lacks raises
``TemplateRenderError`` naming the template, the line and the variable; printing None (an unknown signal) is
refused the same way, so nobody receives "Your quiz average is None%".

Locales: ``locale_chain("pt-BR")`` is ``("pt-BR", "pt", "en")``: the most specific template that exists wins,
``en`` is the last resort. ``pt_br`` and ``PT-br`` are read as ``pt-BR``.

Refused at load, never at a send: ``TemplateCatalog.load(directory)`` parses every file and renders every part
against the sample students of ``processors.notify.context`` (engaged, new, lapsed), and raises
``TemplateCatalogError`` listing every problem as ``file:line: message``: a syntax error, an unknown type,
channel or locale in a file name, a missing or unknown part, a top-level variable the type's context does not
have, a render error against a sample, a part longer than its channel allows (``PART_LIMITS``), an empty part,
and, given a policy, an (intervention type, channel) pair the policy can produce without an ``en`` template.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, TemplateError, TemplateSyntaxError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

from processors.notify.context import Vars, sample_contexts, variables_for
from processors.policy import PolicyConfig
from schemas.events import Channel
from schemas.interventions import InterventionType

DEFAULT_TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "deploy" / "templates"
DEFAULT_LOCALE = "en"
SUFFIX = ".j2"
SHARED_DIR = "_shared"

CHANNEL_PARTS: dict[Channel, tuple[str, ...]] = {
    Channel.email: ("subject", "text", "html"),
    Channel.push: ("title", "body"),
    Channel.sms: ("body",),
    Channel.in_app: ("title", "body"),
}
MULTILINE_PARTS = frozenset({"text", "html"})
# Characters a rendered part may have: what the channel shows without cutting it off.
PART_LIMITS: dict[tuple[Channel, str], int] = {
    (Channel.email, "subject"): 120,
    (Channel.push, "title"): 65,  # what a lock screen shows of a title
    (Channel.push, "body"): 240,
    (Channel.sms, "body"): 306,  # two concatenated GSM-7 segments (153 characters each)
    (Channel.in_app, "title"): 80,
    (Channel.in_app, "body"): 400,
}
_LOCALE = re.compile(r"^(?P<lang>[a-z]{2,3})(?:-(?P<script>[A-Z][a-z]{3}))?(?:-(?P<region>[A-Z]{2}|\d{3}))?$")
_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


# -- locales --------------------------------------------------------------------------------------------------


def normalise_locale(tag: str) -> str:
    """``pt_br`` / ``PT-br`` -> ``pt-BR``, ``zh-hant-tw`` -> ``zh-Hant-TW``: BCP 47 case, hyphens."""
    parts = [p for p in tag.replace("_", "-").split("-") if p]
    if not parts:
        return ""
    out = [parts[0].lower()]
    for p in parts[1:]:
        out.append(p.title() if len(p) == 4 and p.isalpha() else p.upper() if len(p) == 2 else p.lower())
    return "-".join(out)


def locale_chain(locale: str | None, default: str = DEFAULT_LOCALE) -> tuple[str, ...]:
    """The locales to try, most specific first: ``pt-BR`` -> (``pt-BR``, ``pt``, ``en``). Empty/None -> (en,)."""
    tag = normalise_locale(locale or "")
    chain: list[str] = []
    parts = tag.split("-") if tag else []
    while parts:
        chain.append("-".join(parts))
        parts.pop()
    if default not in chain:
        chain.append(default)
    return tuple(chain)


# -- errors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """One thing wrong with the templates: the file (relative to the templates directory), a line, the words."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class TemplateCatalogError(ValueError):
    """The templates cannot be used as they are; ``problems`` lists every one (not only the first)."""

    def __init__(self, directory: Path, problems: list[TemplateProblem]) -> None:
        self.directory = directory
        self.problems = problems
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s) in the templates under {directory}:\n{listing}")


class TemplateRenderError(ValueError):
    """A template failed for this context: ``template`` (file), ``line`` and ``part`` say where."""

    def __init__(self, template: str, line: int | None, part: str, message: str) -> None:
        self.template = template
        self.line = line
        self.part = part
        self.detail = message
        where = f"{template}:{line}" if line else template
        super().__init__(f"{where}: {message} (rendering the {part!r} part)")


class _NamedUndefined(StrictUndefined):
    """StrictUndefined whose message names the variable by its path in the context (``signals.foo``)."""

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name, obj = self._undefined_name, self._undefined_obj
        if obj is missing:
            return f"variable {name!r} is undefined"
        owner = obj.path if isinstance(obj, Vars) else f"a {type(obj).__name__}"
        if isinstance(name, str):
            return f"variable '{owner}.{name}' is undefined" if isinstance(obj, Vars) else f"{owner} has no {name!r}"
        return f"{owner} has no element {name!r}"


class _PrintedNone(TemplateError):
    pass


def _refuse_none(value: Any) -> Any:
    """Jinja ``finalize``: every ``{{ }}`` passes here. None means an unknown signal reached the text."""
    if value is None:
        raise _PrintedNone("printed None (a value unknown for this student): guard it with {% if x is not none %}")
    return value


def _plural(n: int | float, one: str, other: str) -> str:
    """``plural(n, 'day', 'days')``: the word for the count (a language's other forms: write them with ifs)."""
    return one if n == 1 else other


def _environment(directory: Path, autoescape: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(directory)),
        undefined=_NamedUndefined,
        autoescape=autoescape,
        finalize=_refuse_none,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.globals["plural"] = _plural
    return env


# -- the catalogue --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TemplateKey:
    intervention_type: InterventionType
    channel: Channel
    locale: str

    @property
    def file(self) -> str:
        return f"{self.intervention_type.value}/{self.channel.value}.{self.locale}{SUFFIX}"


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One message ready for a channel: ``parts`` by name (``subject``, ``text``, ``html``, ``title``, ``body``)."""

    intervention_type: InterventionType
    channel: Channel
    locale: str  # the template's locale (after the fallback chain)
    template: str  # its file, relative to the templates directory
    parts: dict[str, str]

    def __getitem__(self, part: str) -> str:
        return self.parts[part]


@dataclass(slots=True)
class _Compiled:
    key: TemplateKey
    plain: Template
    html: Template | None  # email: the same file compiled with autoescape, for the html part


@dataclass(slots=True)
class TemplateCatalog:
    """Every template of a directory, checked; ``render`` picks the locale by the fallback chain."""

    directory: Path
    default_locale: str = DEFAULT_LOCALE
    _templates: dict[TemplateKey, _Compiled] = field(default_factory=dict)
    _plain_env: ImmutableSandboxedEnvironment | None = None
    _html_env: ImmutableSandboxedEnvironment | None = None

    # ---- loading

    @classmethod
    def load(
        cls,
        directory: str | Path = DEFAULT_TEMPLATES_DIR,
        *,
        policy: PolicyConfig | None = None,
        default_locale: str = DEFAULT_LOCALE,
    ) -> TemplateCatalog:
        """Load and check every template; raise ``TemplateCatalogError`` listing every problem found.

        With ``policy``, every (type, channel) the policy can produce must have a ``default_locale`` template."""
        catalog, problems = cls.check(directory, policy=policy, default_locale=default_locale)
        if problems:
            raise TemplateCatalogError(Path(directory), problems)
        return catalog

    @classmethod
    def check(
        cls,
        directory: str | Path = DEFAULT_TEMPLATES_DIR,
        *,
        policy: PolicyConfig | None = None,
        default_locale: str = DEFAULT_LOCALE,
    ) -> tuple[TemplateCatalog, list[TemplateProblem]]:
        """What ``load`` does without raising: the catalogue of the good templates and the problems (lint)."""
        root = Path(directory).resolve()
        catalog = cls(root, default_locale)
        problems: list[TemplateProblem] = []
        if not root.is_dir():
            return catalog, [TemplateProblem(str(root), None, "not a directory")]
        catalog._plain_env = _environment(root, autoescape=False)
        catalog._html_env = _environment(root, autoescape=True)
        for path in sorted(root.rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(root).as_posix()
            if rel.startswith(f"{SHARED_DIR}/"):
                problems += catalog._check_shared(rel)
                continue
            key, problem = _parse_name(rel)
            if key is None:
                if problem is not None:
                    problems.append(problem)
                continue
            compiled, found = catalog._compile(key)
            problems += found
            if compiled is not None:
                more = catalog._check_renders(compiled)
                problems += more
                if not more:
                    catalog._templates[key] = compiled
        if policy is not None:
            problems += catalog._check_coverage(policy)
        return catalog, problems

    def _check_shared(self, rel: str) -> list[TemplateProblem]:
        if not rel.endswith(SUFFIX):
            return [TemplateProblem(rel, None, f"not a template (templates end in {SUFFIX})")]
        assert self._plain_env is not None
        try:
            self._plain_env.get_template(rel)
        except TemplateSyntaxError as exc:
            return [TemplateProblem(rel, exc.lineno, f"syntax error: {exc.message}")]
        return []

    def _compile(self, key: TemplateKey) -> tuple[_Compiled | None, list[TemplateProblem]]:
        assert self._plain_env is not None and self._html_env is not None
        rel = key.file
        try:
            source = (self.directory / rel).read_text(encoding="utf-8")
            tree = self._plain_env.parse(source, rel, str(self.directory / rel))
            plain = self._plain_env.get_template(rel)
            html = self._html_env.get_template(rel) if "html" in CHANNEL_PARTS[key.channel] else None
        except TemplateSyntaxError as exc:
            return None, [TemplateProblem(rel, exc.lineno, f"syntax error: {exc.message}")]
        except UnicodeDecodeError as exc:
            return None, [TemplateProblem(rel, None, f"not UTF-8 text: {exc}")]
        problems: list[TemplateProblem] = []
        wanted = CHANNEL_PARTS[key.channel]
        missing_parts = [p for p in wanted if p not in plain.blocks]
        extra = sorted(set(plain.blocks) - set(wanted))
        if missing_parts:
            problems.append(
                TemplateProblem(rel, None, f"{key.channel.value} needs blocks {list(wanted)}; missing {missing_parts}")
            )
        if extra:
            problems.append(
                TemplateProblem(
                    rel, None, f"blocks {extra} are not parts of a {key.channel.value} message {list(wanted)}"
                )
            )
        unknown = sorted(
            meta.find_undeclared_variables(tree) - variables_for(key.intervention_type) - set(self._plain_env.globals)
        )
        if unknown:
            line = _first_line_using(source, unknown)
            problems.append(
                TemplateProblem(
                    rel,
                    line,
                    f"unknown variable(s) {unknown} for {key.intervention_type.value} (see processors/notify/context)",
                )
            )
        if problems:
            return None, problems
        return _Compiled(key, plain, html), []

    def _check_renders(self, compiled: _Compiled) -> list[TemplateProblem]:
        key = compiled.key
        problems: list[TemplateProblem] = []
        for sample, context in sample_contexts(key.intervention_type, key.locale).items():
            try:
                message = self._render(compiled, context)
            except TemplateRenderError as exc:
                problems.append(
                    TemplateProblem(
                        exc.template, exc.line, f"{exc.detail} (part {exc.part!r}, sample student {sample!r})"
                    )
                )
                continue
            for part, text in message.parts.items():
                limit = PART_LIMITS.get((key.channel, part))
                if not text.strip():
                    problems.append(
                        TemplateProblem(key.file, None, f"part {part!r} renders empty for sample student {sample!r}")
                    )
                elif limit is not None and len(text) > limit:
                    problems.append(
                        TemplateProblem(
                            key.file,
                            None,
                            f"part {part!r} renders {len(text)} characters for sample {sample!r} (limit {limit})",
                        )
                    )
        return problems

    def _check_coverage(self, policy: PolicyConfig) -> list[TemplateProblem]:
        problems = []
        for tier, tier_policy in policy.tiers.items():
            for kind in tier_policy.intervention_types:
                for channel in tier_policy.channels:
                    key = TemplateKey(kind, channel, self.default_locale)
                    if key not in self._templates:
                        problems.append(
                            TemplateProblem(
                                key.file,
                                None,
                                f"missing: the policy sends {kind.value} by {channel.value} ({tier} tier)",
                            )
                        )
        return problems

    # ---- reading

    def templates(self) -> list[TemplateKey]:
        return sorted(self._templates, key=lambda k: k.file)

    def locales(self, intervention_type: InterventionType, channel: Channel) -> list[str]:
        return sorted(
            k.locale for k in self._templates if (k.intervention_type, k.channel) == (intervention_type, channel)
        )

    def resolve(self, intervention_type: InterventionType, channel: Channel, locale: str | None) -> TemplateKey | None:
        """The template a student with ``locale`` gets (the first of the fallback chain that exists), or None."""
        for candidate in locale_chain(locale, self.default_locale):
            key = TemplateKey(intervention_type, channel, candidate)
            if key in self._templates:
                return key
        return None

    def render(
        self,
        intervention_type: InterventionType,
        channel: Channel,
        locale: str | None,
        context: Mapping[str, Any],
    ) -> RenderedMessage:
        """Render the message; ``TemplateRenderError`` if no template fits or this context lacks a variable."""
        key = self.resolve(intervention_type, channel, locale)
        if key is None:
            chain = ", ".join(locale_chain(locale, self.default_locale))
            raise TemplateRenderError(
                f"{intervention_type.value}/{channel.value}.*{SUFFIX}", None, "*", f"no template for locales {chain}"
            )
        return self._render(self._templates[key], context)

    def _render(self, compiled: _Compiled, context: Mapping[str, Any]) -> RenderedMessage:
        key = compiled.key
        values = {**context, "channel": key.channel.value, "locale": key.locale}
        parts: dict[str, str] = {}
        for part in CHANNEL_PARTS[key.channel]:
            template = compiled.html if part == "html" and compiled.html is not None else compiled.plain
            try:
                text = "".join(template.blocks[part](template.new_context(values)))
            except TemplateSyntaxError as exc:  # in a file imported while rendering (a _shared macro)
                raise TemplateRenderError(
                    exc.name or key.file, exc.lineno, part, f"syntax error: {exc.message}"
                ) from exc
            except Exception as exc:  # any failure inside a template is the template's: reported with its line
                file, line = _where(template.environment, self.directory, exc.__traceback__, key.file)
                raise TemplateRenderError(file, line, part, _describe(exc)) from exc
            parts[part] = _tidy(text, part)
        return RenderedMessage(key.intervention_type, key.channel, key.locale, key.file, parts)


def _where(env: Any, directory: Path, tb: TracebackType | None, default: str) -> tuple[str, int | None]:
    """The innermost template frame of a traceback: its file (relative to ``directory``) and line in the source.

    Frames of compiled template code carry the template's file name; the template maps their Python line back
    to its own (``get_corresponding_lineno``), with the environment that compiled it (autoescape changes code)."""
    root = str(directory) + "/"
    found: tuple[str, int | None] = (default, None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.startswith(root):
            rel = filename[len(root) :]
            try:
                found = (rel, env.get_template(rel).get_corresponding_lineno(tb.tb_lineno))
            except TemplateError:
                found = (rel, None)
        tb = tb.tb_next
    return found


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TemplateError) and exc.message:
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _tidy(text: str, part: str) -> str:
    if part in MULTILINE_PARTS:
        lines = [line.rstrip() for line in text.strip().splitlines()]
        return _BLANK_LINES.sub("\n\n", "\n".join(lines))
    return _SPACES.sub(" ", text).strip()


def _first_line_using(source: str, names: Iterable[str]) -> int | None:
    patterns = [re.compile(rf"\b{re.escape(n)}\b") for n in names]
    for number, line in enumerate(source.splitlines(), 1):
        if any(p.search(line) for p in patterns):
            return number
    return None


def _parse_name(rel: str) -> tuple[TemplateKey | None, TemplateProblem | None]:
    """``streak_warning/push.pt-BR.j2`` -> its key, or a problem saying what is wrong with the name."""
    parts = rel.split("/")
    if rel.endswith((".md", ".txt")) and len(parts) == 1:
        return None, None  # a README beside the templates
    if not rel.endswith(SUFFIX):
        return None, TemplateProblem(rel, None, f"not a template (templates end in {SUFFIX})")
    if len(parts) != 2:
        return None, TemplateProblem(rel, None, f"expected <intervention type>/<channel>.<locale>{SUFFIX}")
    folder, name = parts
    try:
        kind = InterventionType(folder)
    except ValueError:
        return None, TemplateProblem(
            rel, None, f"unknown intervention type {folder!r}; known: {[t.value for t in InterventionType]}"
        )
    stem = name[: -len(SUFFIX)]
    channel_name, _, locale = stem.partition(".")
    try:
        channel = Channel(channel_name)
    except ValueError:
        return None, TemplateProblem(
            rel, None, f"unknown channel {channel_name!r}; known: {[c.value for c in Channel]}"
        )
    if not _LOCALE.match(locale):
        return None, TemplateProblem(rel, None, f"locale {locale!r} is not a BCP 47 tag such as en, de, pt-BR")
    return TemplateKey(kind, channel, locale), None
