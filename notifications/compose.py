"""Turning a request, the student's contact and the template catalogue into a channel's ``Message``.

Links and offers are collaborators given to the service (``LinkMaker``, ``OfferMaker``): tracked, signed links and
single-use discount codes are made elsewhere. ``PlainLinks`` gives untracked links to the platform when no
tracking is set up. Without an ``OfferMaker`` a discount offer cannot be composed and dead-letters with
"no offer issuer configured".

A request the service cannot compose at all is refused before any channel is tried (``Composer.refusal``): no
signal snapshot in it (the templates are written against the student's signals; a request from a worker that did
not attach them dead-letters with that reason, instead of a message printing made-up numbers), or a discount offer
without an issuer. A template that fails for this student (a variable their context lacks) fails that channel
only, as ``Permanent`` with the template's file and line; the next channel is tried, and the dead letter, if it
comes to that, names every one.

Template experiments: a request whose ``arms`` name a template experiment's variant is rendered from that variant's
template set (the worker assigned it and sent its exposure); a set without a template for the channel falls back to
the request's own.

Digests: the carrier's own message, and after it one line per merged notification - each one's own title (in-app,
else push, else the e-mail subject) rendered from its template in the student's locale - through the macros of
``deploy/templates/_shared/digest.j2`` (``text`` and ``html`` for e-mail, ``line`` appended to single-line parts,
cut to the channel's limit). The macros are rendered against sample items when the ``Composer`` is built: a
broken digest template stops the service at start, with its file and line, not at a send.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifications.channels.base import Message, Permanent
from processors.experiments.arms import template_set
from processors.experiments.config import ExperimentsConfig
from processors.notify.context import Links, Offer, build_context
from processors.notify.templates import (
    CHANNEL_PARTS,
    MULTILINE_PARTS,
    PART_LIMITS,
    TemplateCatalog,
    TemplateCatalogError,
    TemplateProblem,
    TemplateRenderError,
)
from schemas.contacts import Contact
from schemas.events import Channel as ChannelName
from schemas.interventions import InterventionRequest, InterventionType

DIGEST_TEMPLATE = "_shared/digest.j2"
_SUMMARY_SOURCES: tuple[tuple[ChannelName, str], ...] = (
    (ChannelName.in_app, "title"),
    (ChannelName.push, "title"),
    (ChannelName.email, "subject"),
)


class LinkMaker(Protocol):
    """The URLs of one message: action, unsubscribe and preferences links, the e-mail open pixel, the SMS status
    callback (None: none for this channel)."""

    def links(self, request: InterventionRequest, channel: ChannelName) -> Links: ...

    def open_pixel(self, request: InterventionRequest, channel: ChannelName) -> str | None: ...

    def status_callback(self, request: InterventionRequest, channel: ChannelName) -> str | None: ...


OfferMaker = Callable[[InterventionRequest], Offer]


@dataclass(frozen=True, slots=True)
class PlainLinks:
    """Untracked links to the platform (no tracking configured): no pixel, no status callback. No user id in them."""

    platform_url: str

    def links(self, request: InterventionRequest, channel: ChannelName) -> Links:
        base = self.platform_url.rstrip("/")
        return Links(
            action=f"{base}/continue", unsubscribe=f"{base}/settings/notifications", preferences=f"{base}/settings"
        )

    def open_pixel(self, request: InterventionRequest, channel: ChannelName) -> str | None:
        return None

    def status_callback(self, request: InterventionRequest, channel: ChannelName) -> str | None:
        return None


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to be rendered: its offer (issued once, whatever the channels tried) and locale."""

    request: InterventionRequest
    locale: str | None
    offer: Offer | None = None


class _Digest:
    """The digest macros, rendered with the catalogue's sandbox rules (autoescape for HTML only)."""

    def __init__(self, catalog: TemplateCatalog) -> None:
        def env(autoescape: bool) -> ImmutableSandboxedEnvironment:
            return ImmutableSandboxedEnvironment(
                loader=FileSystemLoader(str(catalog.directory)),
                undefined=StrictUndefined,
                autoescape=autoescape,
                trim_blocks=True,
                lstrip_blocks=True,
            )

        try:
            self.plain: Any = env(False).get_template(DIGEST_TEMPLATE).module
            self.html: Any = env(True).get_template(DIGEST_TEMPLATE).module
            for locale in ("en", "de", "pt-BR"):
                self.render(["First <item>", "Second"], locale)
        except (TemplateError, OSError) as exc:
            line = getattr(exc, "lineno", None)
            problem = TemplateProblem(DIGEST_TEMPLATE, line, f"{type(exc).__name__}: {exc}")
            raise TemplateCatalogError(catalog.directory, [problem]) from exc

    def render(self, items: Sequence[str], locale: str) -> dict[str, str]:
        return {
            "text": str(self.plain.text(items, locale)).strip(),
            "html": str(self.html.html(items, locale)).strip(),
            "line": " ".join(str(self.plain.line(items, locale)).split()),
        }


class Composer:
    def __init__(
        self,
        catalog: TemplateCatalog,
        links: LinkMaker,
        offers: OfferMaker | None = None,
        experiments: ExperimentsConfig | None = None,
    ) -> None:
        self.catalog = catalog
        self.link_maker = links
        self.offers = offers
        self.experiments = experiments  # template experiments: a request's variant names the set it is rendered from
        self.digest = _Digest(catalog)

    def template_set(self, request: InterventionRequest, channel: ChannelName, locale: str | None) -> InterventionType:
        """The template set for this request on ``channel``: its template experiment's variant when the request
        names one (``processors.experiments.arms.template_set``) and that set has the channel, else its own."""
        own = request.intervention_type
        if not request.arms or self.experiments is None:
            return own
        name = template_set(request.arms, own, self.experiments)
        if name == own.value or name not in InterventionType.__members__:
            return own
        variant = InterventionType(name)
        return variant if self.catalog.resolve(variant, channel, locale) is not None else own

    def refusal(self, request: InterventionRequest) -> str | None:
        """Why this request cannot be composed on any channel (None: it can be tried)."""
        if request.signals is None:
            return (
                f"intervention {request.intervention_id} carries no signal snapshot: its templates cannot be "
                "rendered (the worker that decided it did not attach the student's signals)"
            )
        if request.intervention_type is InterventionType.discount_offer and self.offers is None:
            return f"intervention {request.intervention_id} is a discount offer and no offer issuer configured"
        return None

    def prepare(self, request: InterventionRequest, contact: Contact) -> Prepared:
        """Issue the offer (discount offers) once; raises ``Permanent`` when the issuer fails."""
        offer = None
        if request.intervention_type is InterventionType.discount_offer and self.offers is not None:
            try:
                offer = self.offers(request)
            except Exception as exc:
                raise Permanent(f"the offer issuer failed: {type(exc).__name__}: {exc}") from exc
        return Prepared(request, request.locale or contact.locale, offer)

    def _render(self, prepared: Prepared, channel: ChannelName) -> tuple[dict[str, str], str]:
        request = prepared.request
        if request.signals is None:  # refusal() said so already; kept for the type checker
            raise Permanent(f"intervention {request.intervention_id} carries no signal snapshot")
        context = build_context(
            request,
            request.signals,
            self.link_maker.links(request, channel),
            factors=request.factors,
            offer=prepared.offer,
            locale=prepared.locale or "en",
        )
        try:
            template = self.template_set(request, channel, prepared.locale)
            rendered = self.catalog.render(template, channel, prepared.locale, context)
        except TemplateRenderError as exc:
            raise Permanent(f"template {exc}") from exc
        return dict(rendered.parts), rendered.locale

    def summary(self, prepared: Prepared) -> str:
        """One line naming this notification in a digest: its own title (in-app, push) or subject."""
        for channel, part in _SUMMARY_SOURCES:
            template = self.template_set(prepared.request, channel, prepared.locale)
            if self.catalog.resolve(template, channel, prepared.locale) is None:
                continue
            parts, _ = self._render(prepared, channel)
            return parts[part]
        raise Permanent(f"no template gives {prepared.request.intervention_type.value} a title for a digest")

    def message(
        self,
        prepared: Prepared,
        channel: ChannelName,
        address: str,
        merged: Sequence[tuple[str, str]] = (),
    ) -> Message:
        """The message for ``channel`` at ``address``; ``merged``: (intervention id, summary line) of a digest's
        other notifications. Raises ``Permanent`` when this channel's template fails for this student."""
        request = prepared.request
        parts, locale = self._render(prepared, channel)
        data: dict[str, str] = {}
        if merged:
            parts = _with_digest(parts, channel, self.digest.render([line for _, line in merged], locale))
            data["digest"] = ",".join(i for i, _ in merged)
        if channel is ChannelName.sms and (callback := self.link_maker.status_callback(request, channel)):
            data["status_callback"] = callback
        links = self.link_maker.links(request, channel)
        return Message(
            intervention_id=request.intervention_id,
            user_id=request.user_id,
            channel=channel,
            to=address,
            parts=parts,
            locale=locale,
            action_url=links.action,
            unsubscribe_url=links.unsubscribe,
            data=data,
            open_pixel_url=self.link_maker.open_pixel(request, channel) if channel is ChannelName.email else None,
        )


def _with_digest(parts: dict[str, str], channel: ChannelName, digest: dict[str, str]) -> dict[str, str]:
    """The carrier's parts with the digest added: e-mail text and HTML get the list; the last single-line part of
    other channels (the body) gets the line, cut to the channel's limit."""
    out = dict(parts)
    if channel is ChannelName.email:
        out["text"] = f"{parts['text']}\n\n{digest['text']}"
        html = parts["html"]
        marker = "</td></tr>"  # the end of the content cell of _shared/email.j2's frame
        at = html.find(marker)
        at = at if at >= 0 else html.rfind("</body>")
        out["html"] = f"{html[:at]}{digest['html']}\n{html[at:]}" if at >= 0 else f"{html}\n{digest['html']}"
        return out
    single = [p for p in CHANNEL_PARTS[channel] if p not in MULTILINE_PARTS]
    last = single[-1]
    text = f"{parts[last]} {digest['line']}"
    limit = PART_LIMITS.get((channel, last))
    if limit is not None and len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    out[last] = text
    return out
