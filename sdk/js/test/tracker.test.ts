import assert from "node:assert/strict";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { MemoryStorage, keyValueStorage, type Rejection } from "../src/index.js";
import { START, networkDown, respond, settle, setup, until } from "./helpers.js";

test("the envelope: id, time with offset, zone, platform, device, app version, session, user after identify", async () => {
  const { tracker, net, clock } = setup({ appVersion: "3.2.1", device: { type: "phone", os: "Android" } });
  await tracker.ready;
  const before = tracker.events.login({ method: "sso" });
  tracker.identify("student-42");
  const after = tracker.events.lessonStarted({ lesson_id: "l-1" }, { course_id: "c-1" });
  await clock.advance(1000);
  const [a, b] = net.calls[0]!.events;
  assert.equal(a!.event_id, before);
  assert.match(String(a!.user_id), /^anon-/);
  assert.deepEqual(b, {
    event_id: after,
    user_id: "student-42",
    event_type: "lesson_started",
    event_time: "2026-03-01T10:00:00.000+01:00",
    platform: "web",
    session_id: a!.session_id,
    payload: { lesson_id: "l-1" },
    device: { type: "phone", os: "Android" },
    app_version: "3.2.1",
    timezone: "Europe/London",
    course_id: "c-1",
  });
  assert.equal(net.calls[0]!.url, "http://collector.test/v1/events");
  assert.equal(net.calls[0]!.init.headers.Authorization, "Bearer wk_test");
  assert.throws(() => tracker.identify("has space"), /must be 1-128/);
});

test("session: the same id while active, a new one after the inactivity timeout", async () => {
  const { tracker, net, clock } = setup({ sessionTimeoutMs: 30 * 60_000 });
  await tracker.ready;
  tracker.events.login();
  await clock.advance(29 * 60_000);
  tracker.events.login();
  await clock.advance(31 * 60_000);
  tracker.events.login();
  await clock.advance(1000);
  const sessions = net.calls.flatMap((c) => c.events.map((e) => e.session_id));
  assert.equal(sessions.length, 3);
  assert.equal(sessions[0], sessions[1]);
  assert.notEqual(sessions[1], sessions[2]);
});

test("batching: a full batch goes at once, a partial one after the flush interval", async () => {
  const { tracker, net, clock } = setup({ batchSize: 10, flushIntervalMs: 2000 });
  await tracker.ready;
  for (let i = 0; i < 25; i++) tracker.events.login();
  await settle();
  assert.deepEqual(net.calls.map((c) => c.events.length), [10, 10]);
  await clock.advance(1999);
  assert.equal(net.calls.length, 2);
  await clock.advance(1);
  assert.deepEqual(net.calls.map((c) => c.events.length), [10, 10, 5]);
  assert.equal(tracker.stats().accepted, 25);
  assert.equal(tracker.stats().queued, 0);
});

test("gzip: a large batch is compressed with CompressionStream and says so", async () => {
  const { tracker, net } = setup({ batchSize: 20, gzip: true });
  await tracker.ready;
  for (let i = 0; i < 20; i++) tracker.events.contentViewed({ content_id: `video-${i}`, content_format: "video" });
  await until(() => net.calls.length === 1, "the batch");
  const { init } = net.calls[0]!;
  assert.equal(init.headers["Content-Encoding"], "gzip");
  assert.ok(init.body instanceof Uint8Array);
  assert.equal(JSON.parse(gunzipSync(init.body).toString()).events.length, 20);
  await until(() => tracker.stats().accepted === 20, "acceptance");
});

test("network errors: retried with growing, jittered backoff until delivered; nothing lost, nothing repeated", async () => {
  const { tracker, net, clock } = setup({ backoff: { baseMs: 1000, maxMs: 8000 }, random: () => 0 });
  await tracker.ready;
  net.then(networkDown, networkDown, networkDown);
  const id = tracker.events.login();
  await clock.advance(1000); // flush interval: first try fails
  assert.equal(net.calls.length, 1);
  assert.equal(clock.nextDelay(), 500); // attempt 1: half of 1 s (+ jitter 0)
  await clock.advance(500);
  assert.equal(clock.nextDelay(), 1000);
  await clock.advance(1000);
  assert.equal(clock.nextDelay(), 2000);
  await clock.advance(2000);
  assert.deepEqual(net.sentIds(), [id, id, id, id]);
  assert.deepEqual(tracker.stats(), { ...tracker.stats(), accepted: 1, retries: 3, queued: 0 });
  await clock.advance(60_000);
  assert.equal(net.calls.length, 4);
});

for (const status of [429, 503]) {
  test(`${status}: waits exactly what Retry-After says, then sends the same batch`, async () => {
    const { tracker, net, clock } = setup();
    await tracker.ready;
    net.then(() => respond(status, { error: "busy", detail: "later" }, { "Retry-After": "7" }));
    const id = tracker.events.login();
    await clock.advance(1000);
    assert.equal(clock.nextDelay(), 7000);
    await clock.advance(6999);
    assert.equal(net.calls.length, 1);
    await clock.advance(1);
    assert.deepEqual(net.sentIds(), [id, id]);
    assert.equal(tracker.stats().accepted, 1);
  });
}

test("400: never retried; every event of the batch reported with the collector's reason", async () => {
  const rejected: Rejection[] = [];
  const { tracker, net, clock } = setup({ onRejected: (r) => rejected.push(...r) });
  await tracker.ready;
  net.then(() => respond(400, { error: "bad_request", detail: "too many events" }));
  const id = tracker.events.login();
  await clock.advance(1000);
  await clock.advance(10 * 60_000);
  assert.equal(net.calls.length, 1);
  assert.deepEqual(rejected, [{ event_id: id, event_type: "login", status: 400, reason: "too many events", errors: [] }]);
  assert.equal(tracker.stats().rejected, 1);
  assert.equal(tracker.stats().queued, 0);
});

test("per-event refusals in a 200 go to onRejected with their field errors; the rest count as accepted", async () => {
  const rejected: Rejection[] = [];
  const { tracker, net, clock } = setup({ onRejected: (r) => rejected.push(...r) });
  await tracker.ready;
  net.then((call) =>
    respond(200, {
      accepted: [call.events[0]!.event_id],
      duplicates: [],
      rejected: [{ index: 1, event_id: call.events[1]!.event_id, reason: "invalid", errors: [{ field: "payload.score", message: "too big" }] }],
    }),
  );
  tracker.events.login();
  const bad = tracker.events.quizSubmitted({ quiz_id: "q", score: 11, max_score: 10 }, { course_id: "c" });
  await clock.advance(1000);
  assert.deepEqual(rejected, [
    { event_id: bad, event_type: "quiz_submitted", status: 200, reason: "invalid", errors: [{ field: "payload.score", message: "too big" }] },
  ]);
  assert.deepEqual([tracker.stats().accepted, tracker.stats().rejected, tracker.stats().queued], [1, 1, 0]);
  await clock.advance(60_000);
  assert.equal(net.calls.length, 1);
});

test("413: the same events are sent again in halves", async () => {
  const { tracker, net, clock } = setup({ batchSize: 8 });
  await tracker.ready;
  net.then(() => respond(413, { error: "payload_too_large", detail: "big" }));
  for (let i = 0; i < 8; i++) tracker.events.login();
  await clock.advance(1000);
  assert.deepEqual(net.calls.map((c) => c.events.length), [8, 4, 4]);
  assert.equal(tracker.stats().accepted, 8);
});

test("bounded queue: offline, the oldest events are dropped and counted", async () => {
  const { tracker, net, clock, storage } = setup({ maxQueue: 5, backoff: { baseMs: 60_000, maxMs: 60_000 } });
  await tracker.ready;
  net.then(networkDown);
  const ids = Array.from({ length: 8 }, () => tracker.events.login());
  await clock.advance(1000);
  assert.equal(tracker.stats().dropped, 3);
  assert.equal(tracker.stats().queued, 5);
  await settle();
  assert.deepEqual((await storage.load()).map((e) => e.id).sort(), ids.slice(3).sort());
  await clock.advance(60_000);
  assert.deepEqual(net.calls.at(-1)!.events.map((e) => e.event_id), ids.slice(3));
});

test("persistence: what one run could not send, the next run (same storage) sends", async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage });
  await first.tracker.ready;
  first.net.then(networkDown);
  first.tracker.identify("student-7");
  const ids = [first.tracker.events.login(), first.tracker.events.login()];
  await first.clock.advance(1000);
  first.tracker.close();

  const second = setup({ storage });
  await second.tracker.ready;
  await second.clock.advance(1000);
  assert.deepEqual(second.net.sentIds(), ids);
  assert.equal(second.net.calls[0]!.events[0]!.user_id, "student-7");
  second.tracker.events.login();
  await second.clock.advance(1000);
  assert.equal(second.net.calls[1]!.events[0]!.user_id, "student-7");
  assert.equal((await storage.load()).length, 0);
});

test("events tracked before storage finished loading are kept, in order, after what was stored", async () => {
  const storage = new MemoryStorage();
  await storage.put([{ id: "old-1", seq: 1, event: { event_id: "old-1" } }]);
  const { tracker, net, clock } = setup({ storage });
  const early = tracker.events.login(); // before ready
  await tracker.ready;
  await clock.advance(1000);
  assert.deepEqual(net.sentIds(), ["old-1", early]);
});

test("consent: nothing tracked (or queued) before consent; withdrawing deletes the queue", async () => {
  const { tracker, net, clock, storage } = setup({ requireConsent: true });
  await tracker.ready;
  assert.equal(tracker.events.login(), undefined);
  await clock.advance(5000);
  assert.equal(net.calls.length, 0);
  assert.equal(tracker.stats().consentBlocked, 1);
  tracker.consent(true);
  const id = tracker.events.login();
  await clock.advance(1000);
  assert.deepEqual(net.sentIds(), [id]);
  net.then(networkDown);
  tracker.events.login();
  await clock.advance(1000);
  tracker.consent(false);
  await settle();
  assert.equal(tracker.stats().queued, 0);
  assert.deepEqual(await storage.load(), []);
  assert.equal(tracker.events.login(), undefined);
});

test("consent given in an earlier run is remembered", async () => {
  const storage = new MemoryStorage();
  const first = setup({ storage, requireConsent: true });
  await first.tracker.ready;
  first.tracker.consent(true);
  await settle();
  const second = setup({ storage, requireConsent: true });
  const id = second.tracker.events.login(); // before ready: judged once the stored consent is known
  await second.tracker.ready;
  await second.clock.advance(1000);
  assert.deepEqual(second.net.sentIds(), [id]);
});

test("reset on logout: no user id, a new anonymous id and a new session", async () => {
  const { tracker, net, clock } = setup();
  await tracker.ready;
  tracker.identify("student-1");
  tracker.events.login();
  tracker.reset();
  tracker.events.login();
  await clock.advance(1000);
  const [a, b] = net.calls[0]!.events;
  assert.equal(a!.user_id, "student-1");
  assert.match(String(b!.user_id), /^anon-/);
  assert.notEqual(a!.session_id, b!.session_id);
});

test("no personal data: a denylisted key or an e-mail-like value refuses the event, warns and counts", async () => {
  const { tracker, net, clock, warnings } = setup();
  await tracker.ready;
  const send = tracker.track.bind(tracker) as (type: string, payload: unknown, context?: unknown) => string | undefined;
  assert.equal(send("login", { method: "sso", email: "a@b.org" }), undefined);
  assert.equal(tracker.events.unenrolled({ reason: "write to jane.doe@example.org" }, { course_id: "c" }), undefined);
  assert.equal(tracker.events.unenrolled({ reason: "call +44 20 7946 0958" }, { course_id: "c" }), undefined);
  assert.ok(tracker.events.unenrolled({ reason: "too busy this term" }, { course_id: "c" }));
  await clock.advance(1000);
  assert.equal(net.sentIds().length, 1);
  assert.equal(tracker.stats().piiRefused, 3);
  assert.equal(warnings.length, 3);
  assert.match(String(warnings[0]![0]), /payload\.email is a personal-data field/);
  const open = setup({ piiKeys: [] });
  assert.ok((open.tracker.track.bind(open.tracker) as typeof send)("login", { name: "x" }));
});

test("unload: everything queued leaves at once in keepalive requests, without waiting for a timer", async () => {
  const { tracker, net } = setup({ batchSize: 50 });
  await tracker.ready;
  const ids = Array.from({ length: 3 }, () => tracker.events.login());
  tracker.flushOnUnload();
  assert.equal(net.calls.length, 1); // synchronously: no await survives a page unload
  assert.equal(net.calls[0]!.init.keepalive, true);
  assert.equal(typeof net.calls[0]!.init.body, "string");
  assert.deepEqual(net.sentIds(), ids);
  await until(() => tracker.stats().accepted === 3, "acceptance");
});

test("unload stays within the browser's 64 KiB keepalive budget; the rest waits in storage", async () => {
  const { tracker, net, storage } = setup({ batchSize: 500, maxQueue: 5000 });
  await tracker.ready;
  for (let i = 0; i < 400; i++) tracker.events.contentViewed({ content_id: `c-${i}`, content_format: "text" });
  await settle();
  net.then(networkDown, networkDown, networkDown, networkDown);
  tracker.flushOnUnload();
  const bytes = net.calls.reduce((n, c) => n + String(c.init.body).length, 0);
  assert.ok(bytes <= 64 * 1024, `${bytes} bytes`);
  assert.ok(net.sentIds().length < 400);
  await settle();
  assert.equal((await storage.load()).length, 400);
});

test("keyValueStorage (React Native's AsyncStorage shape) round-trips the queue and the state", async () => {
  const map = new Map<string, string>();
  const store = {
    getItem: async (k: string) => map.get(k) ?? null,
    setItem: async (k: string, v: string) => void map.set(k, v),
    removeItem: async (k: string) => void map.delete(k),
  };
  const first = setup({ storage: keyValueStorage(store) as MemoryStorage });
  await first.tracker.ready;
  first.net.then(networkDown);
  first.tracker.identify("s-9");
  const id = first.tracker.events.login();
  await first.clock.advance(1000);
  first.tracker.close();
  const second = setup({ storage: keyValueStorage(store) as MemoryStorage });
  await second.tracker.ready;
  await second.clock.advance(1000);
  assert.deepEqual(second.net.sentIds(), [id]);
  assert.equal(map.get("engage:user"), "s-9");
});

test("the clock the tests use is the tracker's: event times follow it", async () => {
  const { tracker, net, clock } = setup();
  await tracker.ready;
  await clock.advance(90_000);
  tracker.events.login();
  await clock.advance(1000);
  assert.equal(net.calls[0]!.events[0]!.event_time, isoAt(START + 90_000));
});

function isoAt(ms: number): string {
  return new Date(ms + 3600_000).toISOString().replace("Z", "+01:00");
}

test("unload: events whose storage write never finished come back from the synchronous stash", async () => {
  // A page torn down mid-write: the queue's storage never saw the last events (their put is abandoned).
  class Abandoning extends MemoryStorage {
    override put(): Promise<void> {
      return new Promise(() => undefined);
    }
  }
  let saved: string | undefined;
  const stash = {
    save: (events: readonly unknown[]) => void (saved = JSON.stringify(events)),
    take: () => {
      const events = saved ? JSON.parse(saved) : [];
      saved = undefined;
      return events;
    },
    clear: () => void (saved = undefined),
  };
  const first = setup({ storage: new Abandoning() as MemoryStorage, unloadStash: stash });
  await first.tracker.ready;
  const ids = Array.from({ length: 5 }, () => first.tracker.events.login());
  first.net.then(networkDown, networkDown);
  first.tracker.flushOnUnload(); // the keepalive request is lost too
  first.tracker.close();
  assert.equal(JSON.parse(saved ?? "[]").length, 5);
  const next = setup({ unloadStash: stash }); // the next page: its storage is empty
  await next.tracker.ready;
  assert.equal(saved, undefined, "taken, not left for a third start");
  assert.deepEqual((await next.storage.load()).map((e) => e.id).sort(), [...ids].sort());
  await next.clock.advance(1000);
  await until(() => next.tracker.stats().accepted === 5, "the stashed events sent");
  assert.deepEqual(next.net.sentIds().sort(), [...ids].sort());
});
