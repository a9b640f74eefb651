"""The notification service's pure rules: what to do with a request given its ledger, the per-student cap,
digests of low-priority requests due in the same slot, contact changes; the digest's composition with the real
templates; the send verifier; contacts import parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifications.channels.base import Permanent
from notifications.compose import Composer, PlainLinks
from notifications.contacts import parse_contacts_jsonl
from notifications.verify import check_sends
from processors.experiments.config import parse_experiments
from processors.notify.context import SAMPLE_AS_OF, SAMPLE_FACTORS, SAMPLE_STUDENTS, preview_request
from processors.notify.dispatch import (
    Drop,
    Due,
    Record,
    Schedule,
    Scheduled,
    SendNow,
    Skip,
    cap_verdict,
    changed_contact,
    decide,
    judged_at,
    missed_deadline,
    plan_due,
)
from processors.notify.templates import TemplateCatalog
from schemas.contacts import Contact, PushToken
from schemas.events import Channel
from schemas.interventions import InterventionRequest, InterventionType, OutcomeKind
from schemas.notifications import LedgerEntry, ledger_key

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)


def request(
    iid: str = "iv-1",
    user: str = "u1",
    kind: InterventionType = InterventionType.gentle_reminder,
    **update: Any,
) -> InterventionRequest:
    snap = SAMPLE_STUDENTS["engaged"](SAMPLE_AS_OF).model_copy(update={"user_id": user})
    base = preview_request(kind, snap).model_copy(
        update={"intervention_id": iid, "user_id": user, "signals": snap, "factors": list(SAMPLE_FACTORS)}
    )
    data = {**base.model_dump(), "created_at": NOW, "deadline": NOW + timedelta(hours=24), **update}
    return InterventionRequest.model_validate(data)


def entry(r: InterventionRequest, state: str, channel: Channel | None = None) -> LedgerEntry:
    return LedgerEntry.model_validate(
        {
            "ledger_key": ledger_key(r.intervention_id, channel),
            "intervention_id": r.intervention_id,
            "user_id": r.user_id,
            "state": state,
            "at": NOW,
            "channel": channel,
        }
    )


# -- decide -----------------------------------------------------------------------------------------------------


def test_a_new_send_request_is_sent_now():
    assert decide(request(), []) == SendNow()


@pytest.mark.parametrize("state", ["sent", "held_out", "digested", "dead_lettered", "queued"])
def test_a_request_already_in_a_final_state_is_skipped(state):
    r = request()
    action = decide(r, [entry(r, state)])
    assert isinstance(action, Skip) and state in action.reason


def test_a_request_sent_on_one_channel_is_skipped_even_if_another_channel_failed_before():
    r = request()
    assert isinstance(decide(r, [entry(r, "sent", Channel.email)]), Skip)


def test_a_scheduled_request_seen_again_is_left_to_its_schedule():
    r = request(status="deferred", send_after=NOW + timedelta(hours=2))
    assert decide(r, [entry(r, "scheduled")]) == Skip("already scheduled")


def test_held_out_is_recorded_never_sent_even_for_outreach():
    assert decide(request(status="held_out"), []) == Record("held_out", OutcomeKind.held_out)
    outreach = request(kind=InterventionType.human_outreach, status="held_out", tier="critical")
    assert decide(outreach, []) == Record("held_out", OutcomeKind.held_out)


def test_human_outreach_is_queued_for_the_success_desk_not_sent():
    r = request(kind=InterventionType.human_outreach, tier="critical")
    assert decide(r, []) == Record("queued", OutcomeKind.queued)


def test_a_deferred_request_is_scheduled_at_send_after():
    at = NOW + timedelta(hours=9)
    assert decide(request(status="deferred", send_after=at), []) == Schedule(at, "deferred")


def test_a_request_due_after_its_deadline_is_refused_with_why():
    r = request(deadline=NOW)
    assert missed_deadline(r, NOW) is None
    reason = missed_deadline(r, NOW + timedelta(minutes=5))
    assert reason is not None and "300 s after its deadline" in reason and r.intervention_id in reason


# -- the per-student cap ------------------------------------------------------------------------------------------


def test_under_the_cap_or_without_one_the_request_goes():
    sent = [NOW - timedelta(hours=h) for h in (1, 2)]
    assert cap_verdict(request(), sent, NOW, cap=3) is None
    assert cap_verdict(request(), sent * 10, NOW, cap=0) is None


def test_sends_older_than_24_hours_do_not_count():
    sent = [NOW - timedelta(hours=h) for h in (25, 30, 48)]
    assert cap_verdict(request(), sent, NOW, cap=1) is None


def test_over_the_cap_the_request_waits_for_the_oldest_send_to_leave_the_window():
    sent = [NOW - timedelta(hours=h) for h in (20, 3, 1)]
    verdict = cap_verdict(request(deadline=NOW + timedelta(hours=10)), sent, NOW, cap=3)
    assert verdict == Schedule(NOW + timedelta(hours=4), verdict.reason)  # type: ignore[union-attr]
    assert "3 notifications delivered to u1 in the last 24 h (cap 3)" in verdict.reason  # type: ignore[union-attr]


def test_over_the_cap_with_more_than_cap_sends_the_slot_frees_when_enough_leave():
    sent = [NOW - timedelta(hours=h) for h in (23, 22, 2)]  # 3 sends, cap 2: two must leave -> at 22 h old + 24
    verdict = cap_verdict(request(), sent, NOW, cap=2)
    assert isinstance(verdict, Schedule) and verdict.due_at == NOW + timedelta(hours=2)


def test_over_the_cap_past_the_deadline_the_request_is_dropped_with_a_reason():
    sent = [NOW - timedelta(hours=1)]
    verdict = cap_verdict(request(deadline=NOW + timedelta(hours=2)), sent, NOW, cap=1)
    assert isinstance(verdict, Drop) and "after its deadline" in verdict.reason and "cap 1" in verdict.reason


# -- digests ------------------------------------------------------------------------------------------------------


def scheduled(iid: str, user: str, due_in_minutes: float, **update: Any) -> Scheduled:
    at = NOW + timedelta(minutes=due_in_minutes)
    return Scheduled(request(iid, user, status="deferred", send_after=at, **update), at)


def test_nothing_is_due_before_its_time():
    assert plan_due([scheduled("a", "u1", 1)], NOW, WINDOW) == []


def test_low_and_medium_requests_of_one_student_in_the_same_slot_become_one_digest():
    items = [
        scheduled("low-1", "u1", -1),
        scheduled("med-1", "u1", 5, tier="medium", intervention_type=InterventionType.peer_comparison),
        scheduled("low-2", "u1", 14),
        scheduled("later", "u1", 40),  # outside the window: stays scheduled
        scheduled("other", "u2", 0),  # another student: alone
    ]
    dues = {d.carrier.user_id: d for d in plan_due(items, NOW, WINDOW)}
    assert dues["u1"].carrier.intervention_id == "med-1"  # the highest tier carries the digest
    assert sorted(r.intervention_id for r in dues["u1"].merged) == ["low-1", "low-2"]
    assert dues["u2"] == Due(items[4].request, due_at=NOW)
    assert dues["u1"].due_at == NOW - timedelta(minutes=1)  # the earliest of the digest
    assert len(dues) == 2


def test_high_tier_requests_are_never_digested():
    items = [
        scheduled("high", "u1", 0, tier="high", intervention_type=InterventionType.streak_warning),
        scheduled("low", "u1", 1),
    ]
    dues = plan_due(items, NOW, WINDOW)
    assert [d.ids for d in dues] == [("high",)]  # the low one is not due yet and not pulled into a high send


def test_the_carrier_among_equals_is_the_riskiest_then_the_earliest_decided():
    items = [scheduled("a", "u1", 0, risk_7d=20.0), scheduled("b", "u1", 0, risk_7d=35.0)]
    (due,) = plan_due(items, NOW, WINDOW)
    assert due.carrier.intervention_id == "b" and due.ids == ("b", "a")


def test_each_request_is_in_at_most_one_due_message():
    items = [scheduled(f"r{i}", "u1", -30 + i * 10) for i in range(6)]  # due at -30, -20, -10, 0, (10, 20)
    dues = plan_due(items, NOW, WINDOW)
    ids = [i for d in dues for i in d.ids]
    assert len(ids) == len(set(ids))
    assert {"r0", "r1", "r2", "r3"} <= set(ids) and "r5" not in ids


# -- contacts -----------------------------------------------------------------------------------------------------


def test_a_contact_change_unsubscribes_and_retires_tokens_and_nothing_else():
    c = Contact(
        user_id="u1",
        email="a@b.org",
        email_verified=True,
        push_tokens=[
            PushToken(token="old", platform="ios", registered_at=NOW),
            PushToken(token="new", platform="ios", registered_at=NOW),
        ],
    )
    changed = changed_contact(c, [Channel.sms], ["old"])
    assert changed.unsubscribed == {Channel.sms} and [t.token for t in changed.push_tokens] == ["new"]
    assert changed.email == "a@b.org"
    assert changed_contact(c, [], ["unknown"]) is c  # nothing changed: the same object, nothing to publish


def test_contacts_jsonl_errors_name_the_line():
    text = '{"user_id": "u1", "email": "a@b.org"}\n\n{"user_id": ""}\n{"user_id": "u3", "phone": 5}\nnot json\n'
    contacts, errors = parse_contacts_jsonl(text)
    assert [c.user_id for c in contacts] == ["u1"]
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4", "line 5"]
    assert "phone" in errors[1]


# -- the verifier ---------------------------------------------------------------------------------------------------


def test_the_verifier_finds_lost_duplicated_and_contradictory_requests():
    check = check_sends(
        expected=["a", "b", "c", "d", "e", "f"],
        accepted=["a", "b", "b", "d", "x"],
        dead_lettered=["c", "d"],
        digested=["f"],
    )
    assert check.lost == ("e",) and check.duplicated == {"b": 2} and check.extra_sends == 1
    assert check.sent_and_dead == ("d",) and check.unexpected == ("x",) and check.digested == ("f",)
    assert check.sent_once == 2 and check.dead_lettered == ("c",) and not check.ok
    assert check_sends(["a", "b"], ["a"], ["b"]).ok


# -- composing, with the real templates ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer(TemplateCatalog.load(), PlainLinks("https://learn.example"))


def contact(**update: Any) -> Contact:
    return Contact(user_id="u1", email="a@b.org", email_verified=True, **update)


def test_a_request_without_signals_or_a_discount_without_an_issuer_is_refused_with_why(composer):
    assert "no signal snapshot" in (composer.refusal(request(signals=None)) or "")
    offer = request(kind=InterventionType.discount_offer, tier="critical")
    assert "no offer issuer configured" in (composer.refusal(offer) or "")
    assert composer.refusal(request()) is None


def test_a_message_is_rendered_in_the_students_locale_with_plain_links(composer):
    r = request(locale="de-AT")
    prepared = composer.prepare(r, contact())
    message = composer.message(prepared, Channel.email, "a@b.org")
    assert message.locale == "de" and message.action_url == "https://learn.example/continue"
    assert message.open_pixel_url is None and "u1" not in (message.action_url or "")
    assert "https://learn.example/continue" in message.parts["html"]


def test_a_template_missing_for_the_channel_fails_that_channel_only(composer):
    prepared = composer.prepare(request(), contact())  # gentle_reminder has no SMS template
    with pytest.raises(Permanent, match="no template"):
        composer.message(prepared, Channel.sms, "+4915112345678")


def test_a_digest_lists_the_merged_notifications_after_the_carriers_message(composer):
    carrier = composer.prepare(request("c", kind=InterventionType.gentle_reminder), contact())
    other = composer.prepare(request("m", kind=InterventionType.milestone_celebration), contact())
    line = composer.summary(other)
    email = composer.message(carrier, Channel.email, "a@b.org", [("m", line)])
    assert email.parts["text"].endswith(f"Also for you:\n- {line}")
    html = email.parts["html"]
    assert html.index("Also for you") < html.index("Notification settings")  # inside the content, above the footer
    in_app = composer.message(carrier, Channel.in_app, "u1", [("m", line)])
    assert in_app.parts["body"].endswith(f"Also for you: {line}") and in_app.data["digest"] == "m"
    assert len(in_app.parts["body"]) <= 400


def test_a_replay_judges_each_request_at_its_own_instant():
    sent_now = request("a", created_at=NOW - timedelta(days=20), deadline=NOW - timedelta(days=19))
    assert judged_at(sent_now, None) == NOW - timedelta(days=20)
    assert missed_deadline(sent_now, judged_at(sent_now, None)) is None  # in its own time it was not late
    deferred = request("b", status="deferred", send_after=NOW - timedelta(days=3), deadline=NOW)
    assert judged_at(deferred, None) == NOW - timedelta(days=3)
    # scheduled again by the cap: judged when the new slot came, so the cap's window moves on
    assert judged_at(deferred, NOW - timedelta(days=2)) == NOW - timedelta(days=2)
    assert judged_at(deferred, NOW - timedelta(days=4)) == NOW - timedelta(days=3)


def test_a_template_experiments_variant_renders_its_set_and_the_control_its_own():
    experiments = parse_experiments(
        '{"version": 1, "holdout": {"share": 0.0, "salt": "s"}, "experiments": [{"key": "low-words", '
        '"surface": "template", "status": "running", "variants": ['
        '{"id": "control", "weight": 0.5, "template": "gentle_reminder"}, '
        '{"id": "milestone", "weight": 0.5, "template": "milestone_celebration"}]}]}'
    )
    with_experiments = Composer(TemplateCatalog.load(), PlainLinks("https://learn.example"), experiments=experiments)
    plain = Composer(TemplateCatalog.load(), PlainLinks("https://learn.example"))

    def title(c: Composer, arms: dict[str, str]) -> str:
        r = request(kind=InterventionType.gentle_reminder).model_copy(update={"arms": arms})
        return c.message(c.prepare(r, contact()), Channel.in_app, "u1").parts["title"]

    reminder = title(plain, {})
    milestone_request = request(kind=InterventionType.milestone_celebration)
    milestone = plain.message(plain.prepare(milestone_request, contact()), Channel.in_app, "u1").parts["title"]
    assert reminder != milestone
    assert title(with_experiments, {"low-words": "milestone"}) == milestone
    assert title(with_experiments, {"low-words": "control"}) == reminder
    assert title(with_experiments, {"some-other-experiment": "x"}) == reminder
    # A variant's set without a template for the channel falls back to the request's own.
    varied = request(kind=InterventionType.gentle_reminder).model_copy(update={"arms": {"low-words": "milestone"}})
    assert with_experiments.template_set(varied, Channel.in_app, "en") is InterventionType.milestone_celebration
    assert with_experiments.template_set(varied, Channel.sms, "en") is InterventionType.gentle_reminder
