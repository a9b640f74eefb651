"""Who may see the admin pages: a login form checks a key (server or admin role) and sets the signed session
cookie; every admin request checks the cookie and that its key is still in force (revoked or expired keys end
their sessions at once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from access.auth import Role
from access.keys import KeyRing
from dashboards import session as cookies

ALLOWED = (Role.server, Role.admin)
#: why the login page was shown, by code (never text from the URL)
REASONS = {
    "expired": "Your session has expired. Log in again.",
    "invalid": "Your session cookie was not accepted (changed, or signed by another server). Log in again.",
    "revoked": "The key you logged in with is no longer in force. Log in with a current key.",
    "login": "Log in with a server or admin key to see the admin pages.",
    "logout": "You are logged out.",
}
MAX_FORM_BYTES = 4096

Handler = Callable[[Request], Awaitable[Response]]


class Gate:
    def __init__(self, keys: KeyRing, secret: bytes, clock: Callable[[], datetime], hours: float) -> None:
        self.keys, self.secret, self.clock, self.hours = keys, secret, clock, hours

    def login(self, presented: str) -> tuple[str, cookies.Session] | str:
        """A cookie for a good key, else the reason it is refused (in words)."""
        principal = self.keys.lookup(presented.strip() or None)
        if principal is None:
            return "That key is not valid (unknown, revoked or expired)."
        if principal.role not in ALLOWED:
            return f"A {principal.role.value} key cannot open the admin pages; use a server or admin key."
        return cookies.issue(
            principal.key_id, principal.app_id, principal.role.value, self.secret, self.clock(), self.hours
        )

    def check(self, request: Request) -> cookies.Session | str:
        """The session of the request's cookie, else the reason code to show on the login page."""
        token = request.cookies.get(cookies.COOKIE)
        if not token:
            return "login"
        now = self.clock()
        try:
            found = cookies.verify(token, self.secret, now)
        except cookies.SessionExpired:
            return "expired"
        except cookies.SessionError:
            return "invalid"
        in_force = {r.key_id for r in self.keys.records() if r.usable(now)}
        return found if found.key_id in in_force else "revoked"

    def required(self, handler: Callable[[Request, cookies.Session], Awaitable[Response]]) -> Handler:
        async def endpoint(request: Request) -> Response:
            found = self.check(request)
            if isinstance(found, str):
                answer = RedirectResponse(f"/login?reason={found}", status_code=303)
                if found != "login":
                    answer.delete_cookie(cookies.COOKIE, path="/")
                return answer
            return await handler(request, found)

        return endpoint


async def form(request: Request) -> dict[str, str]:
    """A urlencoded form body (the pages post nothing else), first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ValueError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
