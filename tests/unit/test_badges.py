"""Open Badges 3.0 export (processors/gamification/badges.py): every field the spec requires, checked against the
spec's own lists, the hashed student identity, and names and criteria from the rules in force."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from config.settings import Settings
from processors.gamification.badges import (
    OB_CONTEXT,
    UNSIGNED_NOTE,
    VC_CONTEXT,
    BadgeIssuer,
    badge_credentials,
    badges_view,
)
from processors.gamification.rules import GameRules, rules_from_file

# Required properties ([1] or [1..*]) in Open Badges 3.0, appendix B.1 (1EdTech, "Open Badges Specification",
# v3.0 Final, doc 1.4.1): AchievementCredential B.1.2, AchievementSubject B.1.3, Achievement B.1.1, Profile B.1.14,
# IdentityObject B.1.12. Criteria (B.1.6) has no required property but is empty without an id or a narrative;
# AchievementSubject needs "either id or at least one identifier".
REQUIRED: dict[str, set[str]] = {
    "AchievementCredential": {"@context", "id", "type", "credentialSubject", "issuer", "validFrom"},
    "AchievementSubject": {"type", "achievement"},
    "Achievement": {"id", "type", "criteria", "description", "name"},
    "Profile": {"id", "type"},
    "IdentityObject": {"type", "hashed", "identityHash", "identityType"},
}
DATETIME_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")  # DateTimeZ
URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:\S+$")
IDENTITY_HASH = re.compile(r"^(sha256\$[0-9a-fA-F]{64}|md5\$[0-9a-fA-F]{32})$")

ISSUER = BadgeIssuer("https://school.example/issuer", "Example School", "pepper-1")
USER = "student-zq81x"
T0 = datetime(2026, 3, 2, 9, 30, 15, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def rules() -> GameRules:
    return rules_from_file()  # the shipped rules file


def missing(obj: dict[str, Any], cls: str) -> set[str]:
    return {k for k in REQUIRED[cls] if obj.get(k) in (None, "", [], {})}


def check_spec(cred: dict[str, Any]) -> None:
    """Everything OB 3.0 says MUST be in an OpenBadgeCredential, with the constraints on those values."""
    assert not missing(cred, "AchievementCredential")
    assert cred["@context"][:2] == [VC_CONTEXT, OB_CONTEXT]  # an ordered set: these two first
    assert "VerifiableCredential" in cred["type"] and "OpenBadgeCredential" in cred["type"]
    assert URI.match(cred["id"])
    assert DATETIME_Z.match(cred["validFrom"])
    issuer = cred["issuer"]
    assert not missing(issuer, "Profile") and "Profile" in issuer["type"] and URI.match(issuer["id"])
    subject = cred["credentialSubject"]
    assert not missing(subject, "AchievementSubject") and "AchievementSubject" in subject["type"]
    assert subject.get("id") or subject.get("identifier"), "either id or at least one identifier"
    for identity in subject.get("identifier", []):
        assert not missing(identity, "IdentityObject") and identity["type"] == "IdentityObject"
        assert isinstance(identity["hashed"], bool)
        if identity["hashed"]:
            assert IDENTITY_HASH.match(identity["identityHash"])
    achievement = subject["achievement"]
    assert not missing(achievement, "Achievement") and "Achievement" in achievement["type"]
    assert URI.match(achievement["id"])
    assert achievement["criteria"].get("id") or achievement["criteria"].get("narrative")


def test_every_unlock_is_a_credential_with_every_field_the_spec_requires(rules: GameRules) -> None:
    unlocked = {"first-lesson": T0, "lessons.10": T0 + 86_400, "streak.7": T0 + 3 * 86_400, "level-5": T0 + 60}
    creds = badge_credentials(USER, unlocked, rules, ISSUER)
    assert len(creds) == 4
    for cred in creds:
        check_spec(cred)
    # oldest first; validFrom is the unlock time
    assert [c["credentialSubject"]["achievement"]["id"].rsplit("/", 1)[1] for c in creds] == [
        "first-lesson",
        "level-5",
        "lessons.10",
        "streak.7",
    ]
    assert creds[0]["validFrom"] == "2026-03-02T09:30:15Z"
    assert datetime.fromisoformat(creds[2]["validFrom"]).timestamp() == T0 + 86_400


def test_a_check_of_the_spec_fails_when_a_required_field_is_missing(rules: GameRules) -> None:
    """The checker above is not vacuous: take away each required field in turn and it notices."""
    (cred,) = badge_credentials(USER, {"first-lesson": T0}, rules, ISSUER)
    for key in REQUIRED["AchievementCredential"]:
        broken = {k: v for k, v in cred.items() if k != key}
        with pytest.raises((AssertionError, KeyError)):
            check_spec(broken)
    for key in REQUIRED["Achievement"]:
        broken = json.loads(json.dumps(cred))
        del broken["credentialSubject"]["achievement"][key]
        with pytest.raises((AssertionError, KeyError)):
            check_spec(broken)


def test_names_descriptions_and_criteria_come_from_the_rules_in_force(rules: GameRules) -> None:
    creds = badge_credentials(USER, {"lessons.50": T0, "first-lesson": T0 + 1, "quiz-streak.3": T0 + 2}, rules, ISSUER)
    by_id = {c["credentialSubject"]["achievement"]["id"].rsplit("/", 1)[1]: c for c in creds}
    lessons = by_id["lessons.50"]["credentialSubject"]["achievement"]
    assert lessons["name"] == "Lesson marathon (50)" and lessons["description"] == "Lessons completed"
    assert lessons["criteria"]["narrative"] == "50 lesson_completed events, in all."
    assert by_id["lessons.50"]["name"] == "Lesson marathon (50)"  # the credential's display name
    first = by_id["first-lesson"]["credentialSubject"]["achievement"]
    assert first["name"] == "First steps" and first["criteria"]["narrative"] == "A first lesson_completed event."
    quiz = by_id["quiz-streak.3"]["credentialSubject"]["achievement"]["criteria"]["narrative"]
    assert quiz == (
        "3 quiz_submitted events with score_pct >= 60 in a row, with no quiz_submitted event with score_pct < 60 "
        "between."
    )


def test_an_unlock_whose_rule_was_removed_is_still_exported_and_says_so(rules: GameRules) -> None:
    (cred,) = badge_credentials(USER, {"old-rule.3": T0}, rules, ISSUER)
    check_spec(cred)
    achievement = cred["credentialSubject"]["achievement"]
    assert achievement["name"] == "old-rule.3" and "no longer in the rules" in achievement["description"]


def test_the_student_is_a_salted_hash_never_the_user_id_in_clear(rules: GameRules) -> None:
    creds = badge_credentials(USER, {"first-lesson": T0, "streak.3": T0 + 5}, rules, ISSUER)
    assert USER not in json.dumps(creds)
    (identity,) = creds[0]["credentialSubject"]["identifier"]
    expected = "sha256$" + hashlib.sha256((USER + "pepper-1").encode()).hexdigest()  # OB 3.0: identity, then salt
    assert identity == {
        "type": "IdentityObject",
        "identityHash": expected,
        "identityType": "systemId",
        "hashed": True,
        "salt": "pepper-1",
    }
    other = badge_credentials("student-other", {"first-lesson": T0}, rules, ISSUER)[0]
    assert other["credentialSubject"]["identifier"][0]["identityHash"] != expected
    assert other["id"] != creds[0]["id"]


def test_exports_are_deterministic_and_unsigned(rules: GameRules) -> None:
    unlocked = {"first-lesson": T0, "comeback": T0 + 9}
    view = badges_view(USER, unlocked, rules, ISSUER)
    assert view == badges_view(USER, dict(reversed(list(unlocked.items()))), rules, ISSUER)
    assert view["signed"] is False and view["note"] == UNSIGNED_NOTE and "unsigned" in view["note"].lower()
    assert view["count"] == 2 and view["rules_version"] == rules.version
    assert all("proof" not in c for c in view["credentials"])
    assert len({c["id"] for c in view["credentials"]}) == 2
    assert badges_view(USER, {}, rules, ISSUER)["credentials"] == []


def test_issuer_comes_from_the_settings_and_bad_values_are_refused() -> None:
    s = Settings(badges_issuer_id="https://uni.example/badges", badges_issuer_name="Uni")
    issuer = BadgeIssuer(s.badges_issuer_id, s.badges_issuer_name, s.badges_identity_salt)
    assert issuer.profile() == {"id": "https://uni.example/badges", "type": ["Profile"], "name": "Uni"}
    assert issuer.achievement_id("lessons.10") == "https://uni.example/badges/achievements/lessons.10"
    with pytest.raises(ValueError, match="badges_issuer_id"):
        Settings(badges_issuer_id="not a url")
    with pytest.raises(ValueError, match="http"):
        BadgeIssuer("urn:x", "Uni", "salt")
    with pytest.raises(ValueError, match="salt"):
        BadgeIssuer("https://uni.example", "Uni", "")
