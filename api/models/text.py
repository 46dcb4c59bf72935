"""Text the catalog can store: request strings with NUL characters or lone surrogates are
refused at the model layer (HTTP 422 naming the field and the position), never passed on to
Postgres, which cannot store them."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> str:
    """`value` unchanged, or a ValueError saying which character is refused and where."""
    bad = _UNSTORABLE.search(value)
    if bad is None:
        return value
    char = bad.group()
    what = "NUL character" if char == "\x00" else "lone surrogate"
    raise ValueError(f"{what} U+{ord(char):04X} at position {bad.start()} is not allowed")


SafeText = Annotated[str, AfterValidator(storable)]
"""A request string that contains no NUL character and no lone surrogate."""
