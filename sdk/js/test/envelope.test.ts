import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffDelay, isoWithOffset, retryAfterMs, uuidv7 } from "../src/index.js";

test("uuidv7: version 7, RFC variant, the millisecond time up front, so ids sort by creation", () => {
  const ms = Date.UTC(2026, 2, 1, 9, 30);
  const id = uuidv7(ms);
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, "").slice(0, 12), 16), ms);
  assert.ok(uuidv7(ms) < uuidv7(ms + 1));
  assert.notEqual(uuidv7(ms), uuidv7(ms));
});

test("event time: local wall time with the device's UTC offset, in the form the collector requires", () => {
  const ms = Date.UTC(2026, 2, 1, 9, 30, 5, 42);
  assert.equal(isoWithOffset(ms, 60), "2026-03-01T10:30:05.042+01:00");
  assert.equal(isoWithOffset(ms, -330), "2026-03-01T04:00:05.042-05:30");
  assert.equal(isoWithOffset(ms, 0), "2026-03-01T09:30:05.042+00:00");
  assert.equal(isoWithOffset(Date.UTC(2026, 0, 1, 0, 0), -60), "2025-12-31T23:00:00.000-01:00");
});

test("backoff: doubles per attempt up to the cap, with jitter in the upper half of each step", () => {
  const policy = { baseMs: 1000, maxMs: 8000 };
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy, () => 0)), [500, 1000, 2000, 4000, 4000]);
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => backoffDelay(a, policy, () => 0.999999)), [1000, 2000, 4000, 8000, 8000]);
});

test("Retry-After: seconds or an HTTP date", () => {
  const now = Date.UTC(2026, 2, 1, 9, 0, 0);
  assert.equal(retryAfterMs("7", now), 7000);
  assert.equal(retryAfterMs("Sun, 01 Mar 2026 09:00:30 GMT", now), 30_000);
  assert.equal(retryAfterMs(null, now), undefined);
  assert.equal(retryAfterMs("soon", now), undefined);
});
