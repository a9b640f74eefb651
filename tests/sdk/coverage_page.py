"""The test page: loads the built SDK bundle and tracks events on a timer, recording every id it tracked.

The ids go to localStorage in the same synchronous step as the track calls, so a reload can never separate
"tracked" from "recorded": what the page claims to have tracked is exactly what the SDK was given.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response
from starlette.routing import Route

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>SDK coverage run</title></head>
<body>
<main><h1>SDK coverage run</h1><p id="status">starting</p></main>
<script type="module">
import { createBrowserTracker } from "/engage.min.js";
const q = new URLSearchParams(location.search);
const total = Number(q.get("total")), per = Number(q.get("per")), every = Number(q.get("every"));
const rejected = JSON.parse(localStorage.getItem("rejected") || "[]");
const tracker = createBrowserTracker({
  endpoint: q.get("endpoint"),
  writeKey: q.get("key"),
  batchSize: 20,
  flushIntervalMs: 250,
  maxQueue: 20000,
  backoff: { baseMs: 250, maxMs: 2000 },
  onRejected: (r) => { rejected.push(...r); localStorage.setItem("rejected", JSON.stringify(rejected)); },
});
tracker.identify(q.get("user"));
window.engage = tracker;
localStorage.setItem("loads", String(Number(localStorage.getItem("loads") || "0") + 1));
const count = () => Number(localStorage.getItem("count") || "0");
const timer = setInterval(() => {
  let n = count();
  if (n >= total) { clearInterval(timer); document.getElementById("status").textContent = "done"; return; }
  const ids = [];
  for (let i = 0; i < per && n < total; i++, n++) {
    ids.push(tracker.events.contentViewed({ content_id: `c-${n}`, content_format: "video", seconds_viewed: n % 600 }));
  }
  localStorage.setItem(`tracked:${n}`, ids.join(","));
  localStorage.setItem("count", String(n));
}, every);
</script>
</body>
</html>
"""


def coverage_app(bundle: Path) -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)

    async def script(request: Request) -> Response:
        return FileResponse(bundle, media_type="text/javascript")

    return Starlette(routes=[Route("/", page), Route("/engage.min.js", script)])
