"""S4, S20: CF's byte units, read as the CF API reads them."""

from __future__ import annotations

import re

import pytest

from wharf.api.units import BYTE_QUANTITY_PATTERN, UnitError, to_megabytes


@pytest.mark.parametrize(
    ("quantity", "megabytes"),
    [
        ("512M", 512),
        ("512MB", 512),
        ("1G", 1024),
        ("1GB", 1024),
        ("1024MB", 1024),
        ("1.5G", 1536),
        ("2048K", 2),
        ("2048KB", 2),
        ("1T", 1024 * 1024),
        ("512m", 512),
        ("512mb", 512),
        ("1g", 1024),
        ("2gb", 2048),
        ("1024k", 1),
        ("1048576B", 1),
        ("1048576b", 1),
        ("512 M", 512),
        ("0.5G", 512),
    ],
)
def test_cf_quantities(quantity: str | int, megabytes: int) -> None:
    # S4
    assert to_megabytes(quantity) == megabytes
    assert re.match(BYTE_QUANTITY_PATTERN, str(quantity))


@pytest.mark.parametrize(("quantity", "megabytes"), [("1K", 1), ("1B", 1), ("1.1M", 2), ("1500K", 2)])
def test_fractions_round_up_so_a_limit_is_never_lower_than_asked(quantity: str, megabytes: int) -> None:
    # S4
    assert to_megabytes(quantity) == megabytes


@pytest.mark.parametrize(
    "quantity",
    ["", "M", "1X", "1MiB", "1Gi", "-1G", "1,5G", "one", "1 G B", ".5G", "1.G", "1e3M", "1KK", "0x10M", "256", "1024"],
)
def test_invalid_forms_are_refused_with_a_message(quantity: str) -> None:
    # S4, S20: a number without a unit too, in the CF API's words
    with pytest.raises(UnitError, match="must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB"):
        to_megabytes(quantity)
    assert not re.match(BYTE_QUANTITY_PATTERN, quantity)


def test_a_bare_integer_is_refused() -> None:
    # S20: the CF API refuses `memory: 1024` (YAML reads it as an integer); it is not taken as megabytes
    with pytest.raises(UnitError, match="'1024' must use a supported unit"):
        to_megabytes(1024)


@pytest.mark.parametrize("quantity", ["0B", "0M", "0G", "0.0G"])
def test_zero_is_refused(quantity: str) -> None:
    # S4
    with pytest.raises(UnitError, match="zero"):
        to_megabytes(quantity)


def test_unit_error_is_a_value_error() -> None:
    # S4: pydantic turns ValueError into a validation error with our message
    assert issubclass(UnitError, ValueError)
