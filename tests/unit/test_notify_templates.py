"""Notification templates: the shipped catalogue, the locale chain, sandboxed rendering, refusal at load, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from engage.cli import app
from processors.notify.context import (
    SAMPLE_AS_OF,
    SAMPLE_LINKS,
    SAMPLE_STUDENTS,
    build_context,
    next_milestone,
    preview_request,
    sample_context,
)
from processors.notify.templates import (
    CHANNEL_PARTS,
    DEFAULT_TEMPLATES_DIR,
    TemplateCatalog,
    TemplateCatalogError,
    TemplateRenderError,
    locale_chain,
    normalise_locale,
)
from processors.policy import PolicyConfig
from schemas.events import Channel
from schemas.interventions import InterventionType
from schemas.signals import RiskFactor

T, C = InterventionType, Channel
EMAIL_OK = """{% block subject %}Hi{% endblock %}
{% block text %}Text {{ reasons[0] }}{% endblock %}
{% block html %}<p>{{ reasons[0] }}</p>{% endblock %}
"""


@pytest.fixture(scope="module")
def catalog() -> TemplateCatalog:
    return TemplateCatalog.load(policy=PolicyConfig())


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def problems_of(root: Path, policy: PolicyConfig | None = None) -> list[str]:
    _, problems = TemplateCatalog.check(root, policy=policy)
    return [str(p) for p in problems]


# -- the shipped catalogue ------------------------------------------------------------------------------------


def test_every_type_and_channel_the_default_policy_produces_has_an_english_template(catalog: TemplateCatalog) -> None:
    policy = PolicyConfig()
    pairs = {(k, c) for tp in policy.tiers.values() for k in tp.intervention_types for c in tp.channels}
    assert len(pairs) == 20
    for kind, channel in pairs:
        assert "en" in catalog.locales(kind, channel), (kind, channel)


def test_german_and_both_portuguese_exist_for_some_types(catalog: TemplateCatalog) -> None:
    assert {"de", "pt", "en"} <= set(catalog.locales(T.streak_warning, C.push))
    assert "pt-BR" in catalog.locales(T.streak_warning, C.push)
    assert {"de", "pt", "pt-BR"} <= set(catalog.locales(T.gentle_reminder, C.in_app))


def test_the_streak_warning_says_how_far_the_next_milestone_is(catalog: TemplateCatalog) -> None:
    message = catalog.render(T.streak_warning, C.push, "en", sample_context(T.streak_warning, "engaged"))
    assert message.parts["body"].startswith("You're 2 days from a 14-day streak.")
    assert message.parts["title"] == "2 days to a 14-day streak"
    german = catalog.render(T.streak_warning, C.push, "de-DE", sample_context(T.streak_warning, "engaged"))
    assert german.locale == "de" and "14-Tage-Serie" in german.parts["title"]


def test_each_part_of_each_channel_is_rendered(catalog: TemplateCatalog) -> None:
    for key in catalog.templates():
        for sample in SAMPLE_STUDENTS:
            context = sample_context(key.intervention_type, sample, key.locale)
            message = catalog.render(key.intervention_type, key.channel, key.locale, context)
            assert message.template == key.file
            assert list(message.parts) == list(CHANNEL_PARTS[key.channel])
            assert all(text.strip() for text in message.parts.values())
            assert "None" not in " ".join(message.parts.values())


def test_an_email_has_a_subject_a_text_and_an_html_document(catalog: TemplateCatalog) -> None:
    message = catalog.render(T.gentle_reminder, C.email, "en", sample_context(T.gentle_reminder, "lapsed"))
    assert message["subject"] == "A few minutes for your course today?"
    assert "It's been 9 days since your last session." in message["text"]
    assert message["html"].startswith("<!DOCTYPE html>") and '<html lang="en">' in message["html"]
    assert SAMPLE_LINKS.unsubscribe in message["html"] and SAMPLE_LINKS.unsubscribe in message["text"]
    assert "\n\n\n" not in message["text"]


# -- locales --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "chain"),
    [
        ("pt-BR", ("pt-BR", "pt", "en")),
        ("pt_br", ("pt-BR", "pt", "en")),
        ("de", ("de", "en")),
        ("en-GB", ("en-GB", "en")),
        ("zh-hant-tw", ("zh-Hant-TW", "zh-Hant", "zh", "en")),
        ("", ("en",)),
        (None, ("en",)),
    ],
)
def test_the_locale_chain_goes_from_specific_to_english(asked: str | None, chain: tuple[str, ...]) -> None:
    assert locale_chain(asked) == chain


def test_locales_are_normalised() -> None:
    assert normalise_locale("PT-br") == "pt-BR"
    assert normalise_locale("es-419") == "es-419"


def test_the_most_specific_template_that_exists_wins(catalog: TemplateCatalog) -> None:
    assert catalog.resolve(T.streak_warning, C.push, "pt-BR") is not None
    got = {
        (channel, asked): catalog.resolve(T.streak_warning, channel, asked)
        for channel in (C.push, C.in_app)
        for asked in ("pt-BR", "pt-PT", "fr-FR")
    }
    assert {k: v.locale for k, v in got.items() if v} == {
        (C.push, "pt-BR"): "pt-BR",  # its own
        (C.push, "pt-PT"): "pt",
        (C.push, "fr-FR"): "en",
        (C.in_app, "pt-BR"): "pt",  # no pt-BR in-app streak warning: pt
        (C.in_app, "pt-PT"): "pt",
        (C.in_app, "fr-FR"): "en",
    }


def test_no_template_in_any_locale_of_the_chain_is_an_error(tmp_path: Path) -> None:
    catalog = TemplateCatalog.load(write(tmp_path, {"gentle_reminder/email.de.j2": EMAIL_OK}))
    with pytest.raises(TemplateRenderError, match="no template for locales fr, en"):
        catalog.render(T.gentle_reminder, C.email, "fr", sample_context(T.gentle_reminder))


# -- rendering: sandboxed, escaped where HTML, strict --------------------------------------------------------


def test_html_is_escaped_and_text_is_not(tmp_path: Path) -> None:
    catalog = TemplateCatalog.load(write(tmp_path, {"gentle_reminder/email.en.j2": EMAIL_OK}))
    snap = SAMPLE_STUDENTS["engaged"](SAMPLE_AS_OF)
    factor = RiskFactor(signal="x", group="login", description="<script>alert(1)</script> & co", contribution=1)
    request = preview_request(T.gentle_reminder, snap)
    context = build_context(request, snap, SAMPLE_LINKS, factors=[factor])
    message = catalog.render(T.gentle_reminder, C.email, "en", context)
    assert message["html"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>"
    assert message["text"] == "Text <script>alert(1)</script> & co"


def test_a_variable_missing_for_this_student_names_the_template_the_line_and_the_variable(
    catalog: TemplateCatalog,
) -> None:
    context = sample_context(T.discount_offer, "engaged")
    del context["offer"]  # a discount offer whose code was not made
    with pytest.raises(TemplateRenderError) as caught:
        catalog.render(T.discount_offer, C.push, "en", context)
    err = caught.value
    assert err.template == "discount_offer/push.en.j2" and err.line == 1 and err.part == "title"
    assert "variable 'offer' is undefined" in str(err)
    assert str(err).startswith("discount_offer/push.en.j2:1: ")


def test_a_nested_missing_key_is_named_by_its_path(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "gentle_reminder/in_app.en.j2": "{% block title %}T{% endblock %}\n"
            "{% block body %}\n\n{{ streak.nope }}{% endblock %}"
        },
    )
    problems = problems_of(root)
    assert problems == [
        "gentle_reminder/in_app.en.j2:4: variable 'streak.nope' is undefined (part 'body', sample student 'engaged')",
        "gentle_reminder/in_app.en.j2:4: variable 'streak.nope' is undefined (part 'body', sample student 'new')",
        "gentle_reminder/in_app.en.j2:4: variable 'streak.nope' is undefined (part 'body', sample student 'lapsed')",
    ]


def test_the_sandbox_refuses_internals_and_changes_to_the_context(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "gentle_reminder/in_app.en.j2": "{% block title %}{{ signals.__class__.__mro__ }}{% endblock %}"
            "{% block body %}b{% endblock %}",
            "gentle_reminder/in_app.de.j2": "{% block title %}{{ reasons.append('x') }}{% endblock %}"
            "{% block body %}b{% endblock %}",
        },
    )
    problems = "\n".join(problems_of(root))
    assert "in_app.en.j2:1: access to attribute '__class__'" in problems
    assert "in_app.de.j2:1: access to attribute 'append' of 'list' object is unsafe" in problems


# -- refused at load ------------------------------------------------------------------------------------------


def test_every_bad_template_is_listed_with_its_file_and_line(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "gentle_reminder/email.en.j2": EMAIL_OK,  # good
            "gentle_reminder/email.de.j2": "{% block subject %}Hallo{% endblock %}\n"
            "{% block text %}\n{% if x %}\n{% endblock %}",
            "gentle_reminder/push.en.j2": "{% block title %}T{% endblock %}",  # body missing
            "gentle_reminder/in_app.en.j2": "{% block title %}{{ progress.course_pct }}%{% endblock %}"
            "{% block body %}b{% endblock %}",
            "gentle_reminder/sms.en.j2": "{% block body %}" + "x" * 400 + "{% endblock %}",
            "streak_warning/push.en.j2": "{% block title %}t{% endblock %}\n"
            "{% block body %}{{ offer.code }}{% endblock %}",
            "no_such_type/push.en.j2": "x",
            "gentle_reminder/fax.en.j2": "x",
            "gentle_reminder/push.english.j2": "x",
            "gentle_reminder/notes.txt": "x",
            "_shared/broken.j2": "line one\n{% macro m( %}",
        },
    )
    with pytest.raises(TemplateCatalogError) as caught:
        TemplateCatalog.load(root)
    listed = [str(p) for p in caught.value.problems]
    expected_prefixes = [
        "_shared/broken.j2:2: syntax error",
        "gentle_reminder/email.de.j2:4: syntax error",
        "gentle_reminder/fax.en.j2: unknown channel 'fax'",
        "gentle_reminder/in_app.en.j2:1: printed None (a value unknown for this student)",  # the new sample student
        "gentle_reminder/notes.txt: not a template",
        "gentle_reminder/push.en.j2: push needs blocks ['title', 'body']; missing ['body']",
        "gentle_reminder/push.english.j2: locale 'english' is not a BCP 47 tag",
        "gentle_reminder/sms.en.j2: part 'body' renders 400 characters for sample 'engaged' (limit 306)",
        "no_such_type/push.en.j2: unknown intervention type 'no_such_type'",
        "streak_warning/push.en.j2:2: unknown variable(s) ['offer'] for streak_warning",
    ]
    for prefix in expected_prefixes:
        assert any(line.startswith(prefix) for line in listed), (prefix, listed)
    assert not any(line.startswith("gentle_reminder/email.en.j2") for line in listed)
    message = str(caught.value)
    assert message.startswith(f"{len(listed)} problem(s) in the templates under {root}")
    assert all(line in message for line in listed)


def test_a_syntax_error_in_a_shared_macro_is_reported_where_it_is(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "_shared/m.j2": "{% macro hello(x) %}\nHello {{ x.nope }}\n{% endmacro %}",
            "gentle_reminder/in_app.en.j2": "{% block title %}T{% endblock %}\n"
            '{% block body %}{% from "_shared/m.j2" import hello %}{{ hello(streak) }}{% endblock %}',
        },
    )
    assert problems_of(root)[0] == (
        "_shared/m.j2:2: variable 'streak.nope' is undefined (part 'body', sample student 'engaged')"
    )


def test_with_a_policy_every_type_and_channel_it_produces_needs_an_english_template(tmp_path: Path) -> None:
    root = write(tmp_path, {"gentle_reminder/email.de.j2": EMAIL_OK})
    problems = problems_of(root, PolicyConfig())
    assert len(problems) == 20
    assert "gentle_reminder/email.en.j2: missing: the policy sends gentle_reminder by email (low tier)" in problems


def test_next_milestone() -> None:
    assert [next_milestone(n) for n in (0, 6, 7, 12, 364, 365)] == [7, 7, 14, 14, 365, None]


# -- the CLI --------------------------------------------------------------------------------------------------


def test_lint_passes_on_the_shipped_templates_and_fails_listing_problems(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["templates", "lint"])
    assert good.exit_code == 0, good.output
    assert f"{DEFAULT_TEMPLATES_DIR}: 32 good templates (de, en, pt, pt-BR), 0 problem(s)" in good.output
    root = write(
        tmp_path,
        {"gentle_reminder/push.en.j2": "{% block title %}{{ nope }}{% endblock %}{% block body %}b{% endblock %}"},
    )
    bad = runner.invoke(app, ["templates", "lint", str(root)])
    assert bad.exit_code == 1
    assert "gentle_reminder/push.en.j2:1: unknown variable(s) ['nope']" in bad.output
    assert "missing: the policy sends" in bad.output


def test_preview_renders_a_sample_or_a_simulated_student() -> None:
    runner = CliRunner()
    sample = runner.invoke(app, ["templates", "preview", "streak_warning", "--channel", "push", "--locale", "de"])
    assert sample.exit_code == 0, sample.output
    assert "streak_warning/push.de.j2 (asked de, got de); context: sample student 'engaged'" in sample.output
    assert "--- title ---\nNoch 2 Tage bis zur 14-Tage-Serie" in sample.output
    simulated = runner.invoke(app, ["templates", "preview", "gentle_reminder", "--user", "sim-000004", "--days", "14"])
    assert simulated.exit_code == 0, simulated.output
    assert "context: simulated student sim-000004 (seed 42, 500 students;" in simulated.output
    assert "--- title ---" in simulated.output  # in_app: the policy's first channel for the low tier
    unknown = runner.invoke(app, ["templates", "preview", "gentle_reminder", "--user", "nobody", "--locale", "pt-BR"])
    assert unknown.exit_code == 0, unknown.output
    assert "no simulated student 'nobody'" in unknown.output and "in_app.pt-BR.j2" in unknown.output
    wrong = runner.invoke(app, ["templates", "preview", "no_such_type"])
    assert wrong.exit_code == 2
