"""Offer codes: deterministic per intervention, distinct across many, unguessable without the secret, typable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from config.settings import Settings
from processors.offers import (
    ALPHABET,
    AlreadyRedeemed,
    InvalidCode,
    NotTheirOffer,
    OfferError,
    OfferExpired,
    OfferTerms,
    check_redemption,
    code_for,
    normalise_code,
    offer_for,
)
from schemas.interventions import InterventionRequest, InterventionType

SECRET = b"test-secret"
NOW = datetime(2026, 11, 2, 10, tzinfo=UTC)


def request(
    intervention_id: str = "i-1", kind: InterventionType = InterventionType.discount_offer
) -> InterventionRequest:
    return InterventionRequest(
        intervention_id=intervention_id,
        user_id="u-1",
        created_at=NOW,
        status="send",
        tier="critical",
        intervention_type=kind,
        reason="No login for 9 days",
        deadline=NOW + timedelta(hours=4),
        risk_7d=88.0,
        model_version="heuristic-1",
        triggered_by_event_time=NOW,
    )


def test_the_same_request_always_gets_the_same_code_and_terms() -> None:
    terms = OfferTerms(percent_off=25, valid_days=7)
    first, again = offer_for(request(), terms, SECRET), offer_for(request(), terms, SECRET)
    assert first == again
    assert first.percent_off == 25
    assert first.expires_at == NOW + timedelta(days=7)
    assert first.code == code_for("i-1", SECRET)


def test_codes_are_grouped_crockford_base32() -> None:
    code = code_for("i-1", SECRET)
    groups = code.split("-")
    assert [len(g) for g in groups] == [4, 4, 4]
    assert set("".join(groups)) <= set(ALPHABET)


def test_codes_differ_per_id_and_per_secret() -> None:
    assert code_for("i-1", SECRET) != code_for("i-2", SECRET)
    assert code_for("i-1", SECRET) != code_for("i-1", b"another-secret")


def test_a_hundred_thousand_interventions_get_a_hundred_thousand_codes() -> None:
    codes = {code_for(f"user-{i}:2026-11-02:discount_offer:{i % 7}", SECRET) for i in range(100_000)}
    assert len(codes) == 100_000
    # every position uses the whole alphabet: no character is stuck (a bit-slicing bug would show here)
    flat = [c.replace("-", "") for c in list(codes)[:5_000]]
    for position in range(12):
        assert len({code[position] for code in flat}) == 32


def test_no_code_without_a_secret() -> None:
    with pytest.raises(OfferError, match="secret is empty"):
        code_for("i-1", b"")


def test_only_discount_offers_get_an_offer() -> None:
    with pytest.raises(OfferError, match="is a human_outreach, not a discount_offer"):
        offer_for(request(kind=InterventionType.human_outreach), OfferTerms(20, 14), SECRET)


@pytest.mark.parametrize(("percent", "days"), [(0, 14), (101, 14), (20, 0), (20, -1)])
def test_terms_that_make_no_sense_are_refused(percent: int, days: float) -> None:
    with pytest.raises(OfferError):
        OfferTerms(percent, days)


def test_terms_come_from_the_settings() -> None:
    assert OfferTerms.from_settings(Settings(offer_percent_off=30, offer_valid_days=3)) == OfferTerms(30, 3)


def test_normalise_accepts_what_people_type() -> None:
    code = code_for("i-1", SECRET)
    bare = code.replace("-", "")
    assert normalise_code(code) == code
    assert normalise_code(bare.lower()) == code
    assert normalise_code(" " + bare[:6] + " " + bare[6:] + " ") == code
    assert normalise_code("0000-1111-AAAA") == "0000-1111-AAAA"
    assert normalise_code("oooo-iIlL-aaaa") == "0000-1111-AAAA"  # O for zero, I and L for one


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ("ABCD-EFGH-JK", "12 characters"),
        ("ABCD-EFGH-JKMNP", "12 characters"),
        ("ABCD-EFGH-JKU1", "no 'U'"),
        ("ABCD-EFGH-JK#1", "no '#'"),
        ("", "got 0"),
    ],
)
def test_normalise_refuses_what_cannot_be_a_code(typed: str, problem: str) -> None:
    with pytest.raises(InvalidCode, match=problem):
        normalise_code(typed)


def test_redemption_rules() -> None:
    expires = NOW + timedelta(days=1)
    check_redemption(offer_user="u-1", expires_at=expires, redeemed_at=None, user_id="u-1", now=NOW)
    with pytest.raises(NotTheirOffer):
        check_redemption(offer_user="u-1", expires_at=expires, redeemed_at=NOW, user_id="u-2", now=NOW)
    with pytest.raises(AlreadyRedeemed):
        check_redemption(offer_user="u-1", expires_at=expires, redeemed_at=NOW, user_id="u-1", now=NOW)
    with pytest.raises(OfferExpired):
        check_redemption(offer_user="u-1", expires_at=expires, redeemed_at=None, user_id="u-1", now=expires)
