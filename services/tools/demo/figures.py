"""The realistic figures of the demo scenario (domain.md), and the amounts derived from them.

Every amount is in integer cents, rounded half up, so that a scenario is the same on every
machine.
"""

from __future__ import annotations

from datetime import date
from typing import Final

PASS: Final = {2016: 3_861_600, 2017: 3_922_800, 2018: 3_973_200}
"""Plafond annuel de la sécurité sociale."""
PMSS: Final = {2016: 321_800, 2017: 326_900, 2018: 331_100}
"""Plafond mensuel: the allocation forfaitaire de repos maternel."""
YEARS: Final = (2016, 2017, 2018)
IJ_CARENCE_DAYS: Final = 3
PATERNITE_DAYS: Final = 11

CATEGORIES: Final = ("PROFESSION_LIBERALE", "ARTISAN", "COMMERCANT")
NATURES: Final = ("IJ_MALADIE", "IJ_MATERNITE", "ALLOCATION_REPOS_MATERNEL", "IJ_PATERNITE")
IJ_MALADIE_PL_FROM: Final = date(2021, 7, 1)
"""Professions libérales had no IJ maladie before this date: none are generated."""


def div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (both positive): integer cents only."""
    return (2 * numerator + denominator) // (2 * denominator)


def days(debut: date, fin: date) -> int:
    """The number of days from `debut` to `fin`, both included."""
    return (fin - debut).days + 1


def annual_contribution(revenu_cents: int, year: int) -> int:
    """Health contribution of a year's income (cents): 3 % + 3.5 % × min(R/PASS, 0.7)/0.7.

    R × (3/100 + 35/1000 × min(10R, 7P)/(7P)) = R × (6P + min(10R, 7P)) / (200P).
    """
    p = PASS[year]
    return div(revenu_cents * (6 * p + min(10 * revenu_cents, 7 * p)), 200 * p)


def ij_forfaitaire(year: int) -> int:
    """Daily flat maternity/paternity allowance (cents): PASS / 730 (53.74 € in 2017)."""
    return div(PASS[year], 730)


def ij_maladie(revenu_cents: int, year: int) -> int:
    """Daily sickness allowance of artisans and commerçants (cents): income (≤ PASS) / 730."""
    return max(1, div(min(revenu_cents, PASS[year]), 730))
