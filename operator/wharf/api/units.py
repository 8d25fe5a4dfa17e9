"""CF's byte units, as the CF API takes them (S4, S20).

`512M`, `1G`, `1024MB`, `1.5G`, `2048K`: a number and one of B, K, KB, M, MB, G, GB, T, TB in either case. A number
without a unit is refused, as the CF API refuses it ("must use a supported unit").
"""

from __future__ import annotations

import math
import re

# The same pattern sits in the CRD (a CEL rule with a CF message) so the apiserver refuses a bad unit before the
# operator sees it. `[.]`, not a backslash: the pattern is also a CEL string literal.
BYTE_QUANTITY_PATTERN = r"^[0-9]+([.][0-9]+)?[ ]?([KkMmGgTt][Bb]?|[Bb])$"
SUPPORTED_UNITS = "B, K, KB, M, MB, G, GB, T, or TB"
# The CF API's words, then what to write.
UNIT_MESSAGE = f"must use a supported unit: {SUPPORTED_UNITS} (write, e.g., 512M or 1G)"
_QUANTITY = re.compile(BYTE_QUANTITY_PATTERN)
_BYTES_PER_UNIT = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class UnitError(ValueError):
    """A CF byte quantity that cannot be read."""


def to_megabytes(quantity: str | int) -> int:
    """Megabytes in a CF quantity, rounded up so a limit is never lower than what was asked for."""
    text = str(quantity).strip()
    if not _QUANTITY.match(text):
        raise UnitError(f"{text!r} {UNIT_MESSAGE}")
    match = re.match(r"^([0-9.]+) ?([A-Za-z]+)$", text)
    assert match is not None  # the pattern above already holds
    number, unit = match.groups()
    unit = unit.upper().removesuffix("B") if unit.upper() != "B" else "B"
    megabytes = math.ceil(float(number) * _BYTES_PER_UNIT[unit] / 1024**2)
    if megabytes <= 0:
        raise UnitError(f"{text!r} is zero: give at least 1M")
    return megabytes
