"""Discount offers: the code a student types at checkout, its terms, and whether a redemption may count.

Pure: no clock, no I/O. A code is derived from the intervention id with HMAC-SHA256 under a secret, so

- the notification service can print it in the message without asking the success desk (same id, same code:
  a re-delivered or re-rendered request shows the student the same code the desk stored);
- nobody without the secret can compute or guess a valid code: 12 Crockford base32 characters are 60 bits,
  and a code only redeems for the student it was issued to anyway.

Codes are grouped ``XXXX-XXXX-XXXX`` for reading aloud and typing; ``normalise_code`` accepts what people
actually type (lower case, spaces, no dashes, O for 0, I or L for 1). 60 bits rather than 50 (10 characters):
two offers sharing a code (the store refuses the second, see ``desk.store``) is then a one-in-two-million
event after a million offers (n^2 / 2^61) instead of one in 2,000.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from processors.notify.context import Offer
from schemas.interventions import InterventionOutcome, InterventionRequest, InterventionType, OutcomeKind

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
CODE_CHARS = 12
GROUP = 4
_DOMAIN = b"engage-offer-code-v1\x00"  # a new version here gives every offer a new code: never change it lightly
# What people type for a symbol that is not in the alphabet (Crockford's decoding rules).
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})
_IGNORED = str.maketrans("", "", "- _.\t")


class OfferError(ValueError):
    """A request that cannot become an offer, or terms that make no sense; the message says which."""


class InvalidCode(ValueError):
    """Typed text that cannot be a code at all (wrong length or characters), before any look-up."""


class RedemptionRefused(ValueError):
    """A redemption that may not count; ``reason`` is the bounded name (metrics, HTTP status)."""

    reason: str = "refused"


class AlreadyRedeemed(RedemptionRefused):
    reason = "already_redeemed"


class OfferExpired(RedemptionRefused):
    reason = "expired"


class NotTheirOffer(RedemptionRefused):
    reason = "wrong_user"


class OfferSettings(Protocol):
    """What offers need of the settings (``config.settings.Settings`` has it): this floor imports no config."""

    @property
    def offer_percent_off(self) -> int: ...
    @property
    def offer_valid_days(self) -> float: ...


@dataclass(frozen=True, slots=True)
class OfferTerms:
    """What every offer gives: a percentage off, valid for a number of days after the policy decided."""

    percent_off: int
    valid_days: float

    def __post_init__(self) -> None:
        if not 1 <= self.percent_off <= 100:
            raise OfferError(f"percent_off must be 1-100, got {self.percent_off}")
        if self.valid_days <= 0:
            raise OfferError(f"valid_days must be positive, got {self.valid_days}")

    @classmethod
    def from_settings(cls, settings: OfferSettings) -> OfferTerms:
        """The one place the terms come from (``offer_percent_off``, ``offer_valid_days``)."""
        return cls(settings.offer_percent_off, settings.offer_valid_days)


def code_for(intervention_id: str, secret: bytes) -> str:
    """The offer code of an intervention: HMAC-SHA256(secret, id), its first 60 bits in Crockford base32."""
    if not secret:
        raise OfferError("the offer code secret is empty")
    digest = hmac.new(secret, _DOMAIN + intervention_id.encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest[:8], "big") >> (64 - 5 * CODE_CHARS)
    chars = "".join(ALPHABET[(number >> (5 * i)) & 31] for i in reversed(range(CODE_CHARS)))
    return _grouped(chars)


def _grouped(chars: str) -> str:
    return "-".join(chars[i : i + GROUP] for i in range(0, len(chars), GROUP))


def offer_for(request: InterventionRequest, terms: OfferTerms, secret: bytes) -> Offer:
    """The offer a discount request carries: its code, and an expiry ``valid_days`` after the decision."""
    if request.intervention_type != InterventionType.discount_offer:
        raise OfferError(
            f"intervention {request.intervention_id} is a {request.intervention_type.value}, not a discount_offer"
        )
    return Offer(
        code=code_for(request.intervention_id, secret),
        percent_off=terms.percent_off,
        expires_at=request.created_at + timedelta(days=terms.valid_days),
    )


def normalise_code(typed: str) -> str:
    """The canonical ``XXXX-XXXX-XXXX`` form of a code as typed; InvalidCode if it cannot be one."""
    chars = typed.upper().translate(_IGNORED).translate(_CONFUSABLE)
    if len(chars) != CODE_CHARS:
        raise InvalidCode(f"an offer code has {CODE_CHARS} characters (dashes aside); got {len(chars)}")
    wrong = sorted({c for c in chars if c not in ALPHABET})
    if wrong:
        raise InvalidCode(f"an offer code has no {', '.join(repr(c) for c in wrong)} (letters and digits only, no U)")
    return _grouped(chars)


def check_redemption(
    *, offer_user: str, expires_at: datetime, redeemed_at: datetime | None, user_id: str, now: datetime
) -> None:
    """Raise the reason a redemption by ``user_id`` at ``now`` may not count; return if it may.

    The order matters for what a caller learns: someone else's code says nothing about its state."""
    if user_id != offer_user:
        raise NotTheirOffer("this code was issued to another student")
    if redeemed_at is not None:
        raise AlreadyRedeemed(f"this code was already redeemed at {redeemed_at.isoformat()}")
    if now >= expires_at:
        raise OfferExpired(f"this code expired at {expires_at.isoformat()}")


def issued_outcome(intervention_id: str, user_id: str, offer: Offer, issued_at: datetime) -> InterventionOutcome:
    """``offer_issued``, at the time the desk stored it; the terms in ``detail``, never the code."""
    detail = f"{offer.percent_off}% off until {offer.expires_at.isoformat()}"
    return InterventionOutcome(
        intervention_id=intervention_id, user_id=user_id, outcome=OutcomeKind.offer_issued, at=issued_at, detail=detail
    )


def redeemed_outcome(intervention_id: str, user_id: str, redeemed_at: datetime) -> InterventionOutcome:
    return InterventionOutcome(
        intervention_id=intervention_id, user_id=user_id, outcome=OutcomeKind.offer_redeemed, at=redeemed_at
    )
