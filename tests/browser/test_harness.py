"""The browser harness catches what it is for: axe violations, console errors, a broken tab order, traffic that
leaves loopback, and browser processes left behind. Pages come from a tiny Starlette app served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.browser.harness import (
    Binaries,
    axe,
    axe_violations,
    console_errors,
    describe,
    screenshot,
    start_browser,
    start_time,
    tab_through,
)
from tests.browser.harness import serve_asgi as serve

pytestmark = pytest.mark.browser

DOT = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle cx="4" cy="4" r="4"/></svg>'
HEAD = (
    '<meta charset="utf-8"><link rel="icon" href="data:,"><style>:focus-visible { outline: 3px solid #1a4d8f }</style>'
)

GOOD = f"""<!doctype html><html lang="en"><head>{HEAD}<title>Accessible page</title></head><body>
<a id="skip" class="skip-link" href="#main">Skip to content</a>
<nav aria-label="Pages"><a id="nav-home" href="/good">Home</a></nav>
<main id="main"><h1>An accessible page</h1>
<div id="fake" onclick="void 0">Looks like a button, is not one</div>
<form><label for="q">Search</label> <input id="q" name="q"> <button id="go" type="submit">Go</button></form>
<img src="/dot.svg" alt="A black dot"></main></body></html>"""

BAD = f"""<!doctype html><html lang="en"><head>{HEAD}<title>Inaccessible page</title></head><body>
<main><h1>An inaccessible page</h1>
<img id="no-alt" src="/dot.svg">
<button id="nameless" type="button"></button>
<p id="faint" style="color: #c8c8c8; background: #ffffff">Barely readable text</p></main></body></html>"""

THROWS = f"""<!doctype html><html lang="en"><head>{HEAD}<title>Broken script</title></head><body>
<main><h1>A page whose script throws</h1></main>
<script>throw new Error("boom from the page script");</script></body></html>"""

TALL = f"""<!doctype html><html lang="en"><head>{HEAD}<title>Tall page</title></head><body>
<main><h1>A tall page</h1><div style="height: 2400px">Long content</div></main></body></html>"""

# Each probe reports "reached" or "blocked" into the page; a no-cors fetch only rejects when nothing answers.
OUTSIDE = f"""<!doctype html><html lang="en"><head>{HEAD}<title>Outside</title></head><body>
<main><h1>Reaching out</h1><ul id="probes"></ul></main>
<script>
for (const url of ["http://example.com/", "http://192.0.2.1/", "https://1.1.1.1/"]) {{
  fetch(url, {{mode: "no-cors", cache: "no-store"}})
    .then(() => "reached", () => "blocked")
    .then(outcome => {{
      const li = document.createElement("li");
      li.dataset.url = url; li.textContent = outcome;
      document.getElementById("probes").append(li);
    }});
}}
</script></body></html>"""


def _page(html: str) -> object:
    async def endpoint(request: Request) -> Response:
        return HTMLResponse(html)

    return endpoint


def _dot(request: Request) -> Response:
    return Response(DOT, media_type="image/svg+xml")


APP = Starlette(
    routes=[
        Route("/good", _page(GOOD)),  # type: ignore[arg-type]
        Route("/bad", _page(BAD)),  # type: ignore[arg-type]
        Route("/throws", _page(THROWS)),  # type: ignore[arg-type]
        Route("/outside", _page(OUTSIDE)),  # type: ignore[arg-type]
        Route("/tall", _page(TALL)),  # type: ignore[arg-type]
        Route("/dot.svg", _dot),
    ]
)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serve(APP) as url:
        yield url


def test_accessible_page_passes_axe_with_no_console_error_and_a_screenshot(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/good")
    assert browser.find_element("css selector", "h1").text == "An accessible page"
    violations = axe(browser)
    assert violations == [], describe(violations)
    assert console_errors(browser) == []
    shot = screenshot(browser, "good")
    assert shot.parent.name == "test_accessible_page_passes_axe_with_no_console_error_and_a_screenshot"
    assert shot.stat().st_size > 1000
    assert _png_size(shot) == (1280, browser.execute_script("return innerHeight"))
    browser.get(f"{base_url}/tall")
    whole = screenshot(browser, "tall", full_page=True)
    assert _png_size(whole)[0] > 1200  # the page's width: the viewport less its scroll bar
    assert _png_size(whole)[1] > 2400


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which follows the 8-byte signature and its own length and type."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def test_axe_reports_missing_alt_nameless_button_and_low_contrast(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/bad")
    violations = {v.rule: v for v in axe_violations(browser)}
    assert {"image-alt", "button-name", "color-contrast"} <= violations.keys(), describe(list(violations.values()))
    assert violations["image-alt"].targets == ("#no-alt",)
    assert violations["button-name"].targets == ("#nameless",)
    assert violations["color-contrast"].targets == ("#faint",)
    assert violations["image-alt"].impact == "critical"
    assert violations["color-contrast"].impact == "serious"
    assert "#nameless" in describe(list(violations.values()))
    # The same page passes a check restricted to an impact none of them has.
    assert axe_violations(browser, impacts=("minor",)) == []


def test_console_errors_reports_an_uncaught_exception(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/throws")
    errors = console_errors(browser)
    assert len(errors) == 1, errors
    assert "boom from the page script" in errors[0]["message"]
    assert console_errors(browser) == []  # reading the log empties it


def test_keyboard_tab_order_and_visible_focus(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/good")
    order = tab_through(browser, 4)
    assert [f.key if f else None for f in order] == ["a#skip", "a#nav-home", "input#q", "button#go"]
    assert all(f is not None and f.outline_visible for f in order)
    # Following the skip link moves focus into the main content.
    browser.get(f"{base_url}/good")
    tab_through(browser, 1)
    browser.switch_to.active_element.send_keys("\n")
    assert browser.current_url.endswith("#main")
    nxt = tab_through(browser, 1)[0]
    assert nxt is not None and nxt.key == "input#q"


PROBES = ["http://example.com/", "http://192.0.2.1/", "https://1.1.1.1/"]


def test_the_browser_cannot_leave_loopback(browser: WebDriver, base_url: str) -> None:
    browser.get(f"{base_url}/outside")
    WebDriverWait(browser, 30).until(lambda d: len(d.find_elements("css selector", "#probes li")) == 3)
    outcomes = {li.get_attribute("data-url"): li.text for li in browser.find_elements("css selector", "#probes li")}
    assert outcomes == dict.fromkeys(PROBES, "blocked")


class _Recorder(socketserver.BaseRequestHandler):
    """Stands where the refusing port would be: writes down each request line, then hangs up."""

    lines: list[str]

    def handle(self) -> None:
        self.lines.append(self.request.recv(4096).split(b"\r\n", 1)[0].decode("latin-1"))


def test_every_non_loopback_request_goes_to_the_dead_end(
    chromium_driver: Binaries, tmp_path: Path, base_url: str
) -> None:
    """Why the test above holds on a machine with the internet too: nothing but loopback is tried directly."""
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"lines": seen})
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as recorder:
        threading.Thread(target=recorder.serve_forever, daemon=True).start()
        started = start_browser(chromium_driver, tmp_path / "profile", dead_end_port=recorder.server_address[1])
        try:
            started.driver.get(f"{base_url}/outside")
            want = {
                "GET http://example.com/ HTTP/1.1",
                "GET http://192.0.2.1/ HTTP/1.1",
                "CONNECT 1.1.1.1:443 HTTP/1.1",
            }
            deadline = time.monotonic() + 30
            while not want <= set(seen) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert want <= set(seen), seen
            assert not [line for line in seen if "127.0.0.1" in line], seen  # the page itself came directly
        finally:
            started.stop()
            recorder.shutdown()


def test_stopping_leaves_no_browser_process(chromium_driver: Binaries, tmp_path: Path, base_url: str) -> None:
    started = start_browser(chromium_driver, tmp_path / "profile")
    started.driver.get(f"{base_url}/good")  # a renderer process too
    running = started.processes()
    assert len(running) >= 3, running  # chromedriver, the browser, at least one child
    started.stop()
    assert [pid for pid, began in running.items() if start_time(pid) == began] == []


async def _endless_events(request: Request) -> Response:
    async def ticks() -> AsyncIterator[bytes]:
        while True:
            yield b"data: {}\n\n"
            await asyncio.sleep(0.2)

    return StreamingResponse(ticks(), media_type="text/event-stream")


def test_serve_asgi_stops_with_an_event_stream_open_and_frees_its_port() -> None:
    """A live dashboard keeps a stream open; the server must still stop (connections cancelled after 2 s)."""
    opened = threading.Event()

    def listen(url: str) -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.stream("GET", f"{url}/live", timeout=60) as response:
            for _ in response.iter_bytes():
                opened.set()

    with serve(Starlette(routes=[Route("/live", _endless_events)])) as url:
        port = int(url.rsplit(":", 1)[1])
        threading.Thread(target=listen, args=(url,), daemon=True).start()
        assert opened.wait(30)
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
