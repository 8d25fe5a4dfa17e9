"""CF's byte units, parsed as the CF CLI does (S4).

`512M`, `1G`, `1024MB`, `1.5G`, `2048K`: case-insensitive, an optional `B`; a plain number is megabytes.
"""

from __future__ import annotations

import math
import re

# The same pattern sits in the CRD schema so the apiserver refuses a bad unit before the operator sees it.
BYTE_QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?[ ]?([KkMmGgTt][Bb]?|[Bb])?$"
_QUANTITY = re.compile(BYTE_QUANTITY_PATTERN)
_BYTES_PER_UNIT = {"": 1024**2, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class UnitError(ValueError):
    """A CF byte quantity that cannot be read."""


def to_megabytes(quantity: str | int) -> int:
    """Megabytes in a CF quantity, rounded up so a limit is never lower than what was asked for."""
    text = str(quantity).strip()
    if not _QUANTITY.match(text):
        raise UnitError(f"{text!r} is not a CF byte quantity: write a number with a unit, such as 512M, 1G or 1024MB")
    match = re.match(r"^([0-9.]+) ?([A-Za-z]*)$", text)
    assert match is not None  # the pattern above already holds
    number, unit = match.groups()
    unit = unit.upper().removesuffix("B") if unit.upper() != "B" else "B"
    megabytes = math.ceil(float(number) * _BYTES_PER_UNIT[unit] / 1024**2)
    if megabytes <= 0:
        raise UnitError(f"{text!r} is zero: give at least 1M")
    return megabytes
