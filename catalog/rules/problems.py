"""What a refused rule is told: the problem, the offending token and where it starts."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from sqlglot import exp

Problem = tuple[str, str | None, int | None]
"""(message, offending token, 0-based position in the stripped text)."""


class RuleValidationError(ValueError):
    """A rule expression was rejected: what is wrong, the offending token and its position.

    `position` is the 0-based character offset in the expression as submitted (None when it
    cannot be told). `message` is meant for the API user and never echoes long input.
    """

    def __init__(self, message: str, token: str | None = None, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.token = token
        self.position = position

    def to_dict(self) -> dict[str, str | int | None]:
        """The JSON error body returned with HTTP 422."""
        return {"message": self.message, "token": self.token, "position": self.position}


def fail(message: str, token: str | None, position: int | None) -> RuleValidationError:
    """The error for a problem at ``position`` (already shifted to the submitted text)."""
    where = f" (at position {position})" if position is not None else ""
    return RuleValidationError(message + where, clip(token) if token else token, position)


def clip(text: str, limit: int = 40) -> str:
    """Shorten user text (whitespace collapsed) before echoing it in a message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."



def suggest(name: str, candidates: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for a misspelt name, or an empty string."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{lowered[m]}'" for m in matches) + "?)"



def node_position(node: exp.Expr) -> int | None:
    """Leftmost source position sqlglot recorded for `node` or any node below it."""
    starts = [n.meta["start"] for n in node.walk() if n._meta and "start" in n._meta]
    return min(starts) if starts else None
