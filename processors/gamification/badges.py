"""A student's unlocked achievements as Open Badges 3.0 credentials (``GET /v1/users/{id}/badges``), pure.

Each unlock in the record (``GameState.unlocked``: unlock id -> epoch seconds) becomes one ``OpenBadgeCredential``,
a W3C Verifiable Credential (data model 2.0) with the fields OB 3.0 requires (1EdTech Open Badges 3.0, appendix
B.1: AchievementCredential, AchievementSubject, Achievement, Criteria, Profile, IdentityObject): ``@context``
(the VC 2.0 context, then the OB 3.0.3 context), ``id``, ``type``, ``issuer``, ``validFrom`` (the unlock time),
``credentialSubject`` with ``type`` and ``achievement`` (``id``, ``type``, ``name``, ``description``, ``criteria``).

**Unsigned.** No ``proof`` is attached: the credentials say what this engine recorded, but nobody can verify who
issued them until they are signed (a Data Integrity proof or a VC-JWT with the issuer's key, which this engine does
not hold). The answer says so in its ``note``.

**No student id in clear.** The repo has no pseudonymisation helper that fits (the holdout hash and the tracking
tokens serve other purposes), so the subject is an OB 3.0 ``IdentityObject``: ``identityHash`` =
``sha256$`` + SHA-256 of the user id followed by the salt, ``hashed`` true, ``identityType`` ``systemId``, and the
salt itself (``badges_identity_salt``), as the spec describes. The platform, which knows the user id, can confirm a
badge is its student's; a reader without a list of candidate ids learns nothing. The credential id is a UUIDv5 of
(issuer, salt, user id, unlock id): the same badge keeps its id on every export and names no one.

Names and descriptions come from the rules in force (``GameRules.achievement_names``); an unlock whose rule was
removed since is still exported (earned is earned), under its id, with a description that says so.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from processors.gamification.rules import (
    AllOfAchievement,
    ComebackAchievement,
    CountAchievement,
    EventFilter,
    GameRules,
    InARowAchievement,
    LevelAchievement,
    StreakAchievement,
    WithinAchievement,
    unlock_ids,
)

VC_CONTEXT = "https://www.w3.org/ns/credentials/v2"
OB_CONTEXT = "https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json"
CREDENTIAL_TYPE = ["VerifiableCredential", "OpenBadgeCredential"]
UNSIGNED_NOTE = (
    "Unsigned Open Badges 3.0 credentials: they carry no proof, so a verifier cannot check who issued them. "
    "Sign them (a Data Integrity proof or a VC-JWT with the issuer's key) before handing them to a wallet."
)


@dataclass(frozen=True, slots=True)
class BadgeIssuer:
    """Who issues the badges (from the settings' Badges block) and the salt of the hashed student identity."""

    id: str  # an http(s) URL: the issuer Profile's id, and the base of each achievement's id
    name: str
    identity_salt: str

    def __post_init__(self) -> None:
        if not self.id.startswith(("https://", "http://")) or any(c.isspace() for c in self.id):
            raise ValueError(f"badge issuer id must be an http(s) URL without spaces, got {self.id!r}")
        if not self.name.strip():
            raise ValueError("badge issuer name must not be empty")
        if not self.identity_salt:
            raise ValueError("badge identity salt must not be empty")

    def profile(self) -> dict[str, Any]:
        return {"id": self.id, "type": ["Profile"], "name": self.name}

    def achievement_id(self, unlock_id: str) -> str:
        return f"{self.id.rstrip('/')}/achievements/{quote(unlock_id, safe='')}"


def identity_hash(user_id: str, salt: str) -> str:
    """OB 3.0 IdentityHash: 'sha256$' + hex SHA-256 of the identifier with the salt appended (both UTF-8)."""
    return "sha256$" + hashlib.sha256((user_id + salt).encode()).hexdigest()


def credential_id(issuer: BadgeIssuer, user_id: str, unlock_id: str) -> str:
    name = "\x1f".join((issuer.id, issuer.identity_salt, user_id, unlock_id))
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def _when(at: float) -> str:
    """DateTimeZ (UTC, 'Z')."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _events(f: EventFilter, n: int = 2) -> str:
    """'lesson_completed events', 'quiz_submitted event with score_pct >= 60' (singular when ``n`` is 1)."""
    conditions = " and ".join(f"{c.field} {c.op} {c.value:g}" for c in f.when)
    plural = "" if n == 1 else "s"
    kind = f"day{plural} with activity" if f.event_type == "active" else f"{f.event_type} event{plural}"
    return f"{kind} with {conditions}" if conditions else kind


def _criteria(rules: GameRules) -> dict[str, str]:
    """Unlock id -> what earns it, in words (the criteria narrative), from each rule's kind and thresholds."""
    out: dict[str, str] = {}
    for a in rules.achievements:
        ids = unlock_ids(a)
        tiers: tuple[int, ...] = getattr(a, "tiers", ()) or (0,)
        for uid, n in zip(ids, tiers if len(ids) > 1 else tiers[:1], strict=True):
            if isinstance(a, CountAchievement):
                out[uid] = f"A first {_events(a.match, 1)}." if n == 1 else f"{n} {_events(a.match)}, in all."
            elif isinstance(a, StreakAchievement):
                out[uid] = f"A streak of {n} active days in a row (streak freezes count)."
            elif isinstance(a, InARowAchievement):
                out[uid] = f"{n} {_events(a.match)} in a row, with no {_events(a.breaks, 1)} between."
            elif isinstance(a, WithinAchievement):
                out[uid] = f"{a.count} {_events(a.match)} within {a.days} consecutive days."
            elif isinstance(a, ComebackAchievement):
                out[uid] = f"Active again after {a.after_days} or more days without activity."
            elif isinstance(a, LevelAchievement):
                out[uid] = f"Reaching level {a.level}."
            elif isinstance(a, AllOfAchievement):
                out[uid] = f"Unlocking all of: {', '.join(a.requires)}."
    return out


def badge_credentials(
    user_id: str, unlocked: Mapping[str, float], rules: GameRules, issuer: BadgeIssuer
) -> list[dict[str, Any]]:
    """One unsigned OpenBadgeCredential per unlock, oldest first."""
    names = rules.achievement_names()
    criteria = _criteria(rules)
    subject_identity = {
        "type": "IdentityObject",
        "identityHash": identity_hash(user_id, issuer.identity_salt),
        "identityType": "systemId",
        "hashed": True,
        "salt": issuer.identity_salt,
    }
    out = []
    for uid, at in sorted(unlocked.items(), key=lambda kv: (kv[1], kv[0])):
        name, description = names.get(uid, (uid, f"Achievement {uid!r}, no longer in the rules in force"))
        valid_from = _when(at)
        out.append(
            {
                "@context": [VC_CONTEXT, OB_CONTEXT],
                "id": credential_id(issuer, user_id, uid),
                "type": list(CREDENTIAL_TYPE),
                "name": name,
                "issuer": issuer.profile(),
                "validFrom": valid_from,
                "awardedDate": valid_from,
                "credentialSubject": {
                    "type": ["AchievementSubject"],
                    "identifier": [dict(subject_identity)],
                    "achievement": {
                        "id": issuer.achievement_id(uid),
                        "type": ["Achievement"],
                        "achievementType": "Badge",
                        "name": name,
                        "description": description,
                        "criteria": {"narrative": criteria.get(uid, description)},
                    },
                },
            }
        )
    return out


def badges_view(user_id: str, unlocked: Mapping[str, float], rules: GameRules, issuer: BadgeIssuer) -> dict[str, Any]:
    """The API's answer: the credentials, the rules version that named them, and the unsigned note."""
    credentials = badge_credentials(user_id, unlocked, rules, issuer)
    return {
        "user_id": user_id,
        "signed": False,
        "note": UNSIGNED_NOTE,
        "rules_version": rules.version,
        "count": len(credentials),
        "credentials": credentials,
    }
