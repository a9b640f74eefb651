"""The pages a headless Chromium loads to measure the SDK: the built bundle, and a naive tracker to compare it with.

Two trackers, each in two runs. The trackers: ``sdk`` (the built bundle, ``createBrowserTracker``) and ``naive``
(what an app writes from the curl example: one ``fetch`` POST per event, no retry, no queue). The runs:

- ``/<tracker>/steady``: tracks ``per`` events every ``every`` ms up to ``total``, recording every id it tracked in
  localStorage in the same synchronous step as the track calls, so a reload can never separate "tracked" from
  "recorded": what the page claims to have tracked is exactly what the tracker was given. ``window.pending()``
  says how many events still wait (the SDK's queue; the naive page's unanswered requests).
- ``/<tracker>/burst``: tracks ``total`` events as fast as the page can (``per`` per task), then sets
  ``window.result`` once every event was accepted or nothing is pending any more (the naive page gives up on a
  failed request): how many were accepted, and milliseconds from the first track to the last answer.

The query string carries ``endpoint`` (the collector or the proxy), ``key`` (a write key) and ``user``.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

TRACKERS = ("sdk", "naive")
RUNS = ("steady", "burst")

_HTML = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SDK coverage run</title></head>
<body>
<main><h1>SDK coverage run</h1><p id="status">starting</p></main>
<script type="module">
const q = new URLSearchParams(location.search);
const total = Number(q.get("total")), per = Number(q.get("per")), every = Number(q.get("every"));
/*TRACKER*/
/*RUN*/
</script>
</body>
</html>
"""

# Each tracker defines track(n) -> the event id, pending() and delivered() (events the collector accepted).
_SDK = """
import { createBrowserTracker } from "/engage.min.js";
const burst = location.pathname.endsWith("/burst");
const rejected = JSON.parse(localStorage.getItem("rejected") || "[]");
let lastAnswer = 0;
const timed = (url, init) => fetch(url, init).then((r) => { lastAnswer = performance.now(); return r; });
const tracker = createBrowserTracker({
  endpoint: q.get("endpoint"),
  writeKey: q.get("key"),
  ...(burst
    ? { maxQueue: total, fetch: timed }  // everything else as an app gets it
    : { batchSize: 20, flushIntervalMs: 250, maxQueue: 20000, backoff: { baseMs: 250, maxMs: 2000 } }),
  onRejected: (r) => { rejected.push(...r); localStorage.setItem("rejected", JSON.stringify(rejected)); },
});
tracker.identify(q.get("user"));
window.engage = tracker;
const track = (n) =>
  tracker.events.contentViewed({ content_id: `c-${n}`, content_format: "video", seconds_viewed: n % 600 });
window.pending = () => tracker.stats().queued;
const delivered = () => tracker.stats().accepted;
"""

_NAIVE = """
const url = `${q.get("endpoint")}/v1/events`, user = q.get("user");
const headers = { "Content-Type": "application/json", Authorization: `Bearer ${q.get("key")}` };
let waiting = 0, accepted = 0, lastAnswer = 0;
const track = (n) => {
  const event = {
    event_id: crypto.randomUUID(), user_id: user, event_type: "content_viewed",
    event_time: new Date().toISOString(), platform: "web",
    payload: { content_id: `c-${n}`, content_format: "video", seconds_viewed: n % 600 },
  };
  waiting++;
  fetch(url, { method: "POST", headers, body: JSON.stringify({ events: [event] }) })
    .then((r) => { lastAnswer = performance.now(); if (r.ok) accepted++; })
    .catch(() => {})
    .finally(() => { waiting--; });
  return event.event_id;
};
window.pending = () => waiting;
const delivered = () => accepted;
"""

_STEADY = """
localStorage.setItem("loads", String(Number(localStorage.getItem("loads") || "0") + 1));
const count = () => Number(localStorage.getItem("count") || "0");
const timer = setInterval(() => {
  let n = count();
  if (n >= total) { clearInterval(timer); document.getElementById("status").textContent = "done"; return; }
  const ids = [];
  for (let i = 0; i < per && n < total; i++, n++) ids.push(track(n));
  localStorage.setItem(`tracked:${n}`, ids.join(","));
  localStorage.setItem("count", String(n));
}, every);
"""

_BURST = """
window.result = null;
const first = performance.now();
for (let n = 0; n < total; ) {
  for (let i = 0; i < per && n < total; i++, n++) track(n);
  await new Promise((resolve) => setTimeout(resolve, 0));
}
const tracking = performance.now() - first;
window.progress = () => ({ delivered: delivered(), pending: window.pending() });
const poll = setInterval(() => {
  if (delivered() < total && window.pending() > 0) return;  // the naive page gives up on what failed
  clearInterval(poll);
  window.result = { tracked: total, accepted: delivered(), tracking_ms: tracking, delivered_ms: lastAnswer - first };
  document.getElementById("status").textContent = "done";
}, 2);
"""


def page(tracker: str, run: str) -> str:
    """The HTML of one tracker in one run; ValueError for an unknown one."""
    if tracker not in TRACKERS or run not in RUNS:
        raise ValueError(f"no page /{tracker}/{run}: trackers {TRACKERS}, runs {RUNS}")
    script = {"sdk": _SDK, "naive": _NAIVE}[tracker]
    return _HTML.replace("/*TRACKER*/", script.strip()).replace("/*RUN*/", {"steady": _STEADY, "burst": _BURST}[run])


def coverage_app(bundle: Path) -> Starlette:
    """Serves every page at /<tracker>/<run> and the built bundle at /engage.min.js."""

    async def html(request: Request) -> Response:
        tracker, run = request.path_params["tracker"], request.path_params["run"]
        try:
            return HTMLResponse(page(tracker, run))
        except ValueError as error:
            return HTMLResponse(str(error), status_code=404)

    async def script(request: Request) -> Response:
        return FileResponse(bundle, media_type="text/javascript")

    return Starlette(routes=[Route("/engage.min.js", script), Route("/{tracker}/{run}", html)])
