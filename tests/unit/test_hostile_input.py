"""Hostile input, fuzzed with hypothesis: the collector's per-event judgement, its HTTP handling (in process, with
a recording producer instead of Kafka) and the worker's fold of what the collector lets through.

Properties: nothing raises; every event is accepted, a duplicate, or refused with a reason that names the field
or limit; every refusal has a dead letter that fits in one Kafka message; accepted events survive their own
encoding (contract JSON, the producer's ``EventBatch``) and fold into a student's state, once.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.settings import Settings
from kafka_io.producer import EventProducer
from processors.pipeline import UserRecord, ingest
from processors.state import UserState
from schemas.errors import MAX_ERRORS, describe
from schemas.events import EVENT_ADAPTER, EVENT_TYPES, PAYLOAD_MODELS, EventEnvelope, parse_event
from schemas.messages import EVENT_BATCH_ADAPTER, MAX_RAW_CHARS, DeadLetter
from schemas.topics import MAX_MESSAGE_BYTES
from streams.collector.app import create_app
from streams.collector.validation import (
    BatchShapeError,
    Limits,
    Rejection,
    Verdict,
    extract_events,
    judge,
    judge_outcomes,
)
from tests.unit.conftest import minimal_event

RECEIVED = datetime(2024, 5, 1, 8, 30, tzinfo=UTC)  # the conftest's minimal events happen at 08:00 UTC
LIMITS = Limits()
APP = "fuzz-web"
FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# ------------------------------------------------------------------------------------------------------
# Strategies: what a hostile or broken client can put in a JSON body
# ------------------------------------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\n",
    "line\r\nbreak",
    "\t",
    "\u202e",  # right-to-left override
    "abc\u202edef",
    "\u200b",  # zero width space
    "a\u200bb",
    "\ufeff",
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    "😀",
    "👩\u200d👩\u200d👧\u200d👦",
    "e\u0301",
    "\uff21",  # fullwidth A
    "٣",  # Arabic-Indic digit three
    "İ",
    "ß",
    "\U0010ffff",
    "\x7f",
    "\x1b[31mred",
    "'; DROP TABLE behavior_events; --",
    "{{7*7}}",
    "../../etc/passwd",
    "%s%n",
    "a" * 129,
    "a" * 10_000,
    "Europe/London\x00",
    "Europe/London ",
    "null",
    "NaN",
    "1e400",
    "0",
    "true",
    "login",
    "quiz_submitted ",
    "LOGIN",
]
HOSTILE_TIMES = [
    "0001-01-01T00:00:00+00:00",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00-23:59",
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:59:59+14:00",
    "1970-01-01T00:00:00Z",
    "2038-01-19T03:14:08Z",
    "2106-02-07T06:28:16Z",
    "2024-02-30T10:00:00Z",
    "2024-04-31T10:00:00+02:00",
    "2024-05-01T24:00:00Z",
    "2024-05-01T23:59:60Z",
    "2024-05-01T10:00:00+24:00",
    "2024-05-01T10:00:00+99:99",
    "2024-05-01T10:00:00",
    "2024-05-01",
    "2024-05-01T10:00:00 +02:00",
    "+10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "\uff12\uff10\uff12\uff14-05-01T10:00:00Z",  # fullwidth digits
    "2024-05-01T10:00:00.9999999999Z",
    "1714550400",
    "now",
    "",
]
EDGE_NUMBERS: list[Any] = [
    0,
    -1,
    1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    0.0,
    -0.0,
    5e-324,
    1e308,
    -1e308,
    1.7976931348623157e308,
    100.00000000000001,
    604800.0000001,
]

json_text = st.text(max_size=40) | st.sampled_from(HOSTILE_STRINGS)
json_numbers = (
    st.integers(min_value=-(2**63), max_value=2**64 - 1)  # what orjson reads as an integer
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EDGE_NUMBERS)
)
json_scalars = st.none() | st.booleans() | json_numbers | json_text
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_text, inner, max_size=4),
    max_leaves=12,
)
# What only a Python caller can hand over (JSON has no NaN, no infinity, no integer beyond 64 bits).
python_only = st.sampled_from([float("nan"), float("inf"), float("-inf"), 2**64, -(2**63) - 1, 10**400, 2**1000])

offsets = st.integers(min_value=-1439, max_value=1439).map(lambda m: timezone(timedelta(minutes=m)))
any_time = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets | st.just(UTC)
).map(lambda d: d.isoformat())
near_time = st.datetimes(
    min_value=(RECEIVED - timedelta(days=500)).replace(tzinfo=None),
    max_value=(RECEIVED + timedelta(days=2)).replace(tzinfo=None),
    timezones=offsets,
).map(lambda d: d.isoformat())
times = near_time | any_time | st.sampled_from(HOSTILE_TIMES)

ENVELOPE_KEYS = [*sorted(EventEnvelope.model_fields), "event_type", "payload"]
DEVICE_KEYS = ["type", "os", "os_version", "model"]


@st.composite
def hostile_events(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> Any:
    """A valid event of any type, then up to four mutations: a field set to a hostile value, removed, or added."""
    if draw(st.integers(0, 9)) == 0:
        return draw(values)  # not an object at all
    event_type = draw(st.sampled_from(EVENT_TYPES))
    event = minimal_event(event_type, event_time=draw(near_time))
    for _ in range(draw(st.integers(0, 4))):
        where = draw(st.sampled_from(["envelope", "envelope", "payload", "payload", "device", "time", "unknown"]))
        if where == "time":
            event["event_time"] = draw(times)
            continue
        if where == "payload":
            target = event.get("payload")
            if not isinstance(target, dict):
                target = event["payload"] = {}
            keys = sorted(PAYLOAD_MODELS[event_type].model_fields)
        elif where == "device":
            target = event.get("device")
            if not isinstance(target, dict):
                target = event["device"] = {}
            keys = DEVICE_KEYS
        else:
            target, keys = event, ENVELOPE_KEYS
        key = draw(json_text) if where == "unknown" or not keys else draw(st.sampled_from(keys))
        if draw(st.integers(0, 4)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(values | st.sampled_from(EVENT_TYPES) | times)
    return event


batches = st.lists(hostile_events(), min_size=1, max_size=6)

# The producer's encoding without a Kafka client behind it (``encode_batches`` only reads ``source``).
_ENCODER = EventProducer.__new__(EventProducer)
_ENCODER.source = "collector"


# ------------------------------------------------------------------------------------------------------
# What must hold for every verdict
# ------------------------------------------------------------------------------------------------------


def _str_field(item: Any, key: str) -> str | None:
    value = item.get(key) if isinstance(item, dict) else None
    return value if isinstance(value, str) else None


def check_rejection(rejection: Rejection, letter: DeadLetter, item: Any) -> None:
    assert rejection.reason.strip(), "a refusal without a reason"
    assert rejection.errors, "a refusal without a field error"
    for error in rejection.errors:
        assert error.field and error.message
        assert error.field in rejection.reason, f"the reason does not name {error.field!r}: {rejection.reason}"
    assert len(rejection.errors) <= MAX_ERRORS + 1
    assert rejection.reason.isprintable(), f"control or bidi characters in a reason: {rejection.reason!r}"
    assert len(rejection.reason) < 50_000
    assert rejection.event_id == _str_field(item, "event_id")
    assert orjson.loads(orjson.dumps(rejection.as_json()))["reason"] == rejection.reason  # the HTTP answer
    assert (letter.reason, letter.errors, letter.event_id) == (rejection.reason, rejection.errors, rejection.event_id)
    assert (letter.source, letter.app_id, letter.received_at) == ("collector", APP, RECEIVED)
    assert letter.user_id == _str_field(item, "user_id")
    assert letter.event_type == _str_field(item, "event_type")


def check_dead_letter_encodes(letter: DeadLetter, item: Any) -> None:
    """The letter can be written to Kafka (one message under the size limit) and read back as it was."""
    value = letter.model_dump_json().encode()
    assert len(value) <= MAX_MESSAGE_BYTES
    assert DeadLetter.model_validate_json(value) == letter
    try:
        assert orjson.loads(letter.raw) == item  # the raw JSON of the refused event, when JSON can carry it
    except orjson.JSONDecodeError:
        assert len(letter.raw) > MAX_RAW_CHARS or "nested too deeply" in letter.raw or letter.raw == repr(item)


def check_accepted(verdict: Verdict, items: list[Any]) -> None:
    newest, oldest = RECEIVED + LIMITS.max_future_skew, RECEIVED - LIMITS.max_age
    ids = [e.event_id for e in verdict.accepted]
    assert len(ids) == len(set(ids)), "the same event id accepted twice in one batch"
    assert set(verdict.duplicates) <= set(ids)
    for event in verdict.accepted:
        assert oldest <= event.event_time <= newest
        assert any(_str_field(i, "event_id") == event.event_id for i in items)
        # Round trip through the contract's own JSON.
        assert EVENT_ADAPTER.validate_json(EVENT_ADAPTER.dump_json(event)) == event
    if not verdict.accepted:
        return
    # Round trip through what the collector publishes: one EventBatch per user, stamped with received_at.
    by_id = {e.event_id: e for e in verdict.accepted}
    encoded = _ENCODER.encode_batches(verdict.accepted, RECEIVED)
    assert sum(n for _, _, n in encoded) == len(verdict.accepted)
    for key, value, _ in encoded:
        assert len(value) <= MAX_MESSAGE_BYTES
        batch = EVENT_BATCH_ADAPTER.validate_json(value)
        assert key == batch.user_id.encode()
        for event in batch.events:
            assert event.received_at == RECEIVED
            sent = by_id[event.event_id]  # received_at is the collector's, whatever the client wrote there
            assert event.model_copy(update={"received_at": sent.received_at}) == sent
        # ... and into the student's state, as the worker folds it: each event once, a redelivery all duplicates.
        events = orjson.loads(value)["events"]
        record = UserRecord(state=UserState(user_id=batch.user_id))
        first = ingest(record, batch.user_id, events)
        assert (first.new_events, first.duplicates, first.rejected) == (len(events), 0, [])
        again = ingest(UserRecord.from_bytes(record.to_bytes()), batch.user_id, events)
        assert (again.new_events, again.duplicates, again.rejected) == (0, len(events), [])


def check_verdict(verdict: Verdict, items: list[Any], *, encodable: bool = True) -> None:
    assert len(verdict.accepted) + len(verdict.duplicates) + len(verdict.rejected) == len(items)
    indexes = [r.index for r in verdict.rejected]
    assert indexes == sorted(set(indexes)) and all(0 <= i < len(items) for i in indexes)
    assert len(verdict.dead_letters) == len(verdict.rejected)
    for rejection, letter in zip(verdict.rejected, verdict.dead_letters, strict=True):
        check_rejection(rejection, letter, items[rejection.index])
        if encodable:
            check_dead_letter_encodes(letter, items[rejection.index])
    check_accepted(verdict, items)


def signature(verdict: Verdict) -> tuple[Any, ...]:
    return (
        [e.event_id for e in verdict.accepted],
        verdict.duplicates,
        [(r.index, r.event_id, r.reason, r.errors) for r in verdict.rejected],
    )


# ------------------------------------------------------------------------------------------------------
# The collector's per-event judgement
# ------------------------------------------------------------------------------------------------------


@FUZZ
@given(batches)
@example([minimal_event("login", app_version=[[[[[[[[1]]]]]]]])])
@example([minimal_event("login", payload={f"k{i}": i for i in range(MAX_ERRORS + 5)})])
@example([{"\u202eevent_id\x00\n": 1, "event_type": "login"}])
@example([minimal_event("quiz_submitted", payload={"score": 2**64 - 1, "max_score": 1e308})])
def test_every_event_is_accepted_or_refused_with_a_reason_and_a_dead_letter(items: list[Any]) -> None:
    before = copy.deepcopy(items)
    verdict = judge(items, RECEIVED, APP, LIMITS)
    assert items == before, "judging changed the client's input"
    check_verdict(verdict, items)
    assert signature(judge(copy.deepcopy(items), RECEIVED, APP, LIMITS)) == signature(verdict), "not deterministic"


@FUZZ
@given(st.lists(hostile_events(json_values | python_only), min_size=1, max_size=4))
@example([minimal_event("quiz_submitted", payload={"score": 5.0, "max_score": float("inf")})])
@example([minimal_event("quiz_submitted", payload={"score": float("inf"), "max_score": float("inf")})])
@example([minimal_event("course_progress", payload={"lessons_total": 2**70})])
@example([minimal_event("login", app_version="\ud800")])
def test_python_callers_cannot_get_an_event_accepted_that_json_cannot_carry(items: list[Any]) -> None:
    # NaN, infinity and integers beyond 64 bits never come from orjson, but the contract is also used directly
    # (the producer library, tests, replays): an accepted event must still survive its own encoding.
    verdict = judge(items, RECEIVED, APP, LIMITS)
    check_verdict(verdict, items, encodable=False)


def test_nan_infinity_huge_integers_and_unix_times_are_refused_by_name() -> None:
    cases = [
        ({"payload": {"score": 1.0, "max_score": float("inf")}}, "payload.max_score", "finite"),
        ({"payload": {"score": float("nan"), "max_score": 1.0}}, "payload.score", "finite"),
        ({"payload": {"score": 1.0, "max_score": 2.0, "attempt": 2**63}}, "payload.attempt", "less than or equal"),
        ({"event_time": "1714550400"}, "event_time", "ISO 8601"),  # Unix seconds in a string, offset unknown
        ({"event_time": "-1"}, "event_time", "ISO 8601"),
    ]
    for overrides, field, words in cases:
        verdict = judge([minimal_event("quiz_submitted", **overrides)], RECEIVED, APP, LIMITS)
        assert not verdict.accepted
        assert f"{field}: " in verdict.rejected[0].reason and words in verdict.rejected[0].reason


@FUZZ
@given(any_time | near_time)
def test_events_far_in_the_past_or_future_are_refused_with_the_limit(when: str) -> None:
    verdict = judge([minimal_event("login", event_time=when)], RECEIVED, APP, LIMITS)
    moment = datetime.fromisoformat(when)
    if moment > RECEIVED + LIMITS.max_future_skew:
        assert "event_time" in verdict.rejected[0].reason and "in the future" in verdict.rejected[0].reason
    elif moment < RECEIVED - LIMITS.max_age:
        assert "event_time" in verdict.rejected[0].reason and "older than 400 days" in verdict.rejected[0].reason
    else:
        assert [e.event_time for e in verdict.accepted] == [moment]


@FUZZ
@given(st.lists(st.sampled_from(["e-1", "e-2", "e-3"]), min_size=1, max_size=60))
def test_a_duplicate_flood_is_accepted_once_per_event_id(ids: list[str]) -> None:
    verdict = judge([minimal_event("login", event_id=i) for i in ids], RECEIVED, APP, LIMITS)
    assert [e.event_id for e in verdict.accepted] == list(dict.fromkeys(ids))
    assert len(verdict.duplicates) == len(ids) - len(set(ids))
    check_verdict(verdict, [minimal_event("login", event_id=i) for i in ids])


def test_unknown_keys_that_would_garble_a_reason_are_escaped_and_shortened() -> None:
    event = minimal_event("login")
    event["\u202egnp.exe"] = 1
    event["x\nFAKE LOG LINE"] = 1
    event["k" * 5_000] = 1
    (rejection,) = judge([event], RECEIVED, APP, LIMITS).rejected
    fields = sorted(e.field for e in rejection.errors)
    assert fields == sorted(["\\u202egnp.exe", "x\\nFAKE LOG LINE", "k" * 77 + "..."])
    assert rejection.reason.isprintable()


def test_an_event_with_100k_unknown_fields_gets_a_short_reason_and_a_letter_that_fits() -> None:
    event = minimal_event("login", payload={f"k{i:06d}": 0 for i in range(100_000)})
    (rejection,) = judge([event], RECEIVED, APP, LIMITS).rejected
    assert len(rejection.errors) == MAX_ERRORS + 1
    assert rejection.errors[-1].message == f"{100_000 - MAX_ERRORS} more problems not listed"
    assert "payload.k000000: is not a known field" in rejection.reason and len(rejection.reason) < 5_000


def test_json_nested_as_deep_as_orjson_reads_is_refused_not_crashed() -> None:
    deep = orjson.loads(b"[" * 1023 + b"1" + b"]" * 1023)
    for items in ([minimal_event("login", app_version=deep)], [deep], [minimal_event("login", payload={"x": deep})]):
        verdict = judge(items, RECEIVED, APP, LIMITS)
        assert len(verdict.rejected) == 1
        check_verdict(verdict, items)


# ------------------------------------------------------------------------------------------------------
# Whole request bodies, parsed as the collector parses them
# ------------------------------------------------------------------------------------------------------


def as_sent(body: bytes, key: dict[str, str], content_type: str | None, gzipped: bool) -> tuple[bytes, dict[str, str]]:
    """A fuzzed body and its headers as a client would send them (gzipped when asked)."""
    headers = dict(key)
    if content_type:
        headers["Content-Type"] = content_type
    if gzipped:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    return body, headers


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return orjson.dumps(draw(json_values))
    if kind == 2:
        text = orjson.dumps({"events": draw(batches)})
        cut = draw(st.integers(0, len(text)))
        return text[:cut] if draw(st.booleans()) else text  # sometimes truncated mid-way
    body: Any = draw(batches)
    return orjson.dumps({"events": body} if kind == 3 else body)


@FUZZ
@given(bodies())
@example(b"")
@example(b"\xef\xbb\xbf[]")
@example(b"[" * 1025 + b"]" * 1025)
@example(b'{"events": [1e400]}')
@example(b'"\\ud800"')
@example(b"NaN")
def test_any_body_is_a_batch_or_a_clear_refusal(body: bytes) -> None:
    try:
        items = extract_events(orjson.loads(body), LIMITS)
    except orjson.JSONDecodeError as exc:
        assert str(exc)
        return
    except BatchShapeError as exc:
        assert "event" in str(exc)
        return
    check_verdict(judge(items, RECEIVED, APP, LIMITS), items)


# ------------------------------------------------------------------------------------------------------
# Intervention outcomes (the server-side endpoint)
# ------------------------------------------------------------------------------------------------------

OUTCOME = {
    "intervention_id": "i-1",
    "user_id": "u-1",
    "outcome": "opened",
    "channel": "push",
    "at": "2024-05-01T08:00Z",
}


@st.composite
def hostile_outcomes(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    item: dict[str, Any] = dict(OUTCOME)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*OUTCOME, "detail", "schema_version"]) | json_text)
        if draw(st.integers(0, 4)) == 0:
            item.pop(key, None)
        else:
            item[key] = draw(json_values | times)
    return item


@FUZZ
@given(st.lists(hostile_outcomes(), min_size=1, max_size=5))
def test_every_outcome_is_accepted_or_refused_with_a_reason(items: list[Any]) -> None:
    verdict = judge_outcomes(items, RECEIVED, APP, LIMITS)
    assert len(verdict.accepted) + len(verdict.rejected) == len(items)
    for rejection, letter in zip(verdict.rejected, verdict.dead_letters, strict=True):
        check_rejection(rejection, letter, items[rejection.index])
        check_dead_letter_encodes(letter, items[rejection.index])
    for outcome in verdict.accepted:
        assert RECEIVED - LIMITS.max_age <= outcome.at <= RECEIVED + LIMITS.max_future_skew
        assert type(outcome).model_validate_json(outcome.model_dump_json()) == outcome


# ------------------------------------------------------------------------------------------------------
# The collector over HTTP, in process: a recording producer stands in for Kafka
# ------------------------------------------------------------------------------------------------------


class RecordingProducer:
    """What the collector hands to Kafka, encoded as the real producer encodes it and refused as librdkafka
    refuses a message over ``message.max.bytes``."""

    source = "collector"
    report_successes = True
    encode_batches = EventProducer.encode_batches
    in_flight = 0  # nothing waits for Kafka here (the collector's admission reads it)

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dead_letters: list[DeadLetter] = []

    async def send_async(
        self, events: Any, dead_letters: Any = (), received_at: Any = None, outcomes: Any = ()
    ) -> None:
        batches = [v for _, v, _ in self.encode_batches(events, received_at)]
        letters = [dl.model_dump_json().encode() for dl in dead_letters]
        reports = [o.model_dump_json().encode() for o in outcomes]
        too_big = [len(v) for v in batches + letters + reports if len(v) > MAX_MESSAGE_BYTES]
        assert not too_big, f"librdkafka would refuse messages of {too_big} bytes (MSG_SIZE_TOO_LARGE)"
        for value in batches:
            self.events.extend(orjson.loads(value)["events"])
        self.dead_letters.extend(DeadLetter.model_validate_json(v) for v in letters)

    def close(self, timeout: float = 0.0) -> int:
        return 0


class InProcessClient:
    """Requests straight into the ASGI app. No lifespan (the collector would create topics on a real broker);
    an unhandled exception in the app surfaces here instead of becoming a 500."""

    def __init__(self, app: Any) -> None:
        self.transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self.transport, base_url="http://collector") as client:
                return await client.post(path, **kwargs)

        return asyncio.run(send())


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Any:
    producer = RecordingProducer()
    settings = Settings(
        run_dir=tmp_path_factory.mktemp("hostile"),  # no key registry but the settings' keys
        write_keys=["fuzz-web:wk_fuzz_web_key"],
        server_keys=["fuzz-srv:sk_fuzz_srv_key"],
    )
    app = create_app(settings, producer)
    return InProcessClient(app), producer


WRITE = {"Authorization": "Bearer wk_fuzz_web_key"}
CONTENT_TYPES = [
    None,
    "application/json",
    "text/plain",  # what navigator.sendBeacon sends
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/xml",
    "application/json; charset=latin-1",
]


@FUZZ
@given(body=bodies(), content_type=st.sampled_from(CONTENT_TYPES), gzipped=st.booleans())
def test_the_collector_answers_every_body_with_json_and_never_a_5xx(
    http: Any, body: bytes, content_type: str | None, gzipped: bool
) -> None:
    client, producer = http
    body, headers = as_sent(body, WRITE, content_type, gzipped)
    letters_before = len(producer.dead_letters)
    resp = client.post("/v1/events", content=body, headers=headers)
    assert resp.status_code in (200, 400), resp.text
    answer = resp.json()
    new_letters = producer.dead_letters[letters_before:]
    if resp.status_code == 400:
        assert answer["error"] == "bad_request" and answer["detail"]
        assert [dl.reason for dl in new_letters] == [answer["detail"]]  # the whole body, dead-lettered
        return
    assert [dl.reason for dl in new_letters] == [r["reason"] for r in answer["rejected"]]
    assert all(r["reason"] for r in answer["rejected"])


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b'{"events": [', {}, 400, "not valid JSON"),
        (b"not json at all", {"Content-Type": "text/html"}, 400, "not valid JSON"),
        (b"events=1&x=2", {"Content-Type": "application/x-www-form-urlencoded"}, 400, "not valid JSON"),
        (b'{"events": []}', {}, 400, "empty"),
        (b"42", {}, 400, "JSON object"),
        (b"[" * 2_000 + b"]" * 2_000, {}, 400, "depth limit"),
        (b'[{"event_id": "e"}]', {"Content-Encoding": "br"}, 400, "Content-Encoding"),
        (b'[{"event_id": "e"}]', {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
        (gzip.compress(b'[{"event_id": "e"}]')[:-8], {"Content-Encoding": "gzip"}, 400, "truncated"),
        (gzip.compress(b"[" + b" " * 2_000_000 + b"]"), {"Content-Encoding": "gzip"}, 413, "decompressed"),
        (b"\x00" * 1_048_576, {}, 400, "not valid JSON"),
        (b" " * 1_048_577, {}, 413, "exceeds the limit"),
    ],
    ids=[
        "truncated-json",
        "html",
        "form",
        "empty-batch",
        "number",
        "too-deep",
        "brotli",
        "not-gzip",
        "truncated-gzip",
        "gzip-bomb",
        "1MiB-of-NUL",
        "too-large",
    ],
)
def test_body_level_refusals_are_clear_and_kept(
    http: Any, body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    client, producer = http
    letters_before = len(producer.dead_letters)
    resp = client.post("/v1/events", content=body, headers={**WRITE, **headers})
    assert resp.status_code == status, resp.text
    assert words in resp.json()["detail"]
    new = producer.dead_letters[letters_before:]
    if status == 400:
        assert [dl.reason for dl in new] == [resp.json()["detail"]]
        assert len(new[0].raw) <= MAX_RAW_CHARS + 100
    else:
        assert new == []  # too large to keep; the client was told


def test_an_outcome_body_of_garbage_is_refused_clearly(http: Any) -> None:
    client, _ = http
    server = {"Authorization": "Bearer sk_fuzz_srv_key"}
    resp = client.post("/v1/interventions/outcomes", content=b'{"outcomes": "lots"}', headers=server)
    assert resp.status_code == 400 and "outcomes" in resp.json()["detail"]
    far = [dict(OUTCOME, at="0001-01-01T00:00:00+00:00"), dict(OUTCOME, at="9999-01-01T00:00:00+00:00")]
    resp = client.post("/v1/interventions/outcomes", json={"outcomes": far}, headers=server)
    assert resp.status_code == 200
    reasons = [r["reason"] for r in resp.json()["rejected"]]
    assert "older than 400 days" in reasons[0] and "in the future" in reasons[1]


# ------------------------------------------------------------------------------------------------------
# The worker's fold, on messages that did not come through the collector
# ------------------------------------------------------------------------------------------------------

NOW = datetime.now(UTC).isoformat()
_OK = {"user_id": "u", "event_type": "login", "event_time": NOW, "platform": "web"}


@pytest.mark.parametrize(
    "events",
    [
        [1],
        [None],
        ["login"],
        [{**_OK, "event_id": "p1", "event_type": "quiz_submitted", "payload": [1]}],
        [{**_OK, "event_id": "p2", "event_type": ["login"]}],
        [{**_OK, "event_id": "p3", "event_time": "0001-01-01T00:00:00+05:00", "timezone": "Europe/London"}],
        [{**_OK, "event_id": "p4", "event_type": "lesson_completed", "payload": {"duration_seconds": 1e308}}],
    ],
    ids=["number", "null", "string", "payload-list", "event-type-list", "year-1-in-a-zone", "1e308-seconds"],
)
def test_the_worker_fold_dead_letters_poison_events_instead_of_crashing(events: list[Any]) -> None:
    record = UserRecord(state=UserState(user_id="u"))
    result = ingest(record, "u", events)
    UserRecord.from_bytes(record.to_bytes())
    assert len(result.rejected) == len(events)


def test_the_contract_refuses_each_worker_poison_event() -> None:
    # The same poison, sent through the collector, is refused with a reason (so only topic writers that skip
    # the contract can reach the fold with it).
    poison = [
        1,
        None,
        {**_OK, "event_id": "p1", "event_type": "quiz_submitted", "payload": [1]},
        {**_OK, "event_id": "p2", "event_type": ["login"]},
        {**_OK, "event_id": "p4", "event_type": "lesson_completed", "payload": {"duration_seconds": 1e308}},
    ]
    for item in poison:
        with pytest.raises(ValidationError) as info:
            parse_event(item)
        assert describe(info.value)
