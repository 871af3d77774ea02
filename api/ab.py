"""A/B split: a stable hash of the user id decides the arm, the same in every process."""

from __future__ import annotations

import hashlib

CHAMPION, CHALLENGER = "champion", "challenger"


def bucket(user_id: str, salt: str) -> float:
    """The user's point in [0, 1): keyed BLAKE2b, so a new salt reshuffles every user."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=8,
                             key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / 2**64


def arm_for(user_id: str, challenger_share: float, salt: str) -> str:
    if challenger_share <= 0:
        return CHAMPION
    return CHALLENGER if bucket(user_id, salt) < challenger_share else CHAMPION
