"""Head circumference for gestational age: is this head small, typical or large for its age?

When the age is known from an early dating scan (or the last menstrual period), a measured HC
is read against a growth standard: its z-score and centile. This module uses the
INTERGROWTH-21st fetal growth standard for HC (Papageorghiou, Ohuma, Altman et al.,
"International standards for fetal growth based on serial ultrasound measurements: the Fetal
Growth Longitudinal Study of the INTERGROWTH-21st Project", Lancet 2014; 384: 869-879,
doi:10.1016/S0140-6736(14)61490-2), made from 4,321 low-risk pregnancies in eight countries,
dated by crown-rump length, with the HC ellipse placed on the outer border of the skull. At GA
weeks:

    mean(GA) = -28.2849 + 1.69267 GA^2 - 0.397485 GA^2 ln(GA)                       (mm)
    SD(GA)   = 1.98735 + 0.0136772 GA^3 - 0.00726264 GA^3 ln(GA)
               + 0.000976253 GA^3 ln(GA)^2                                           (mm)

z = (HC - mean) / SD, centile = 100 Phi(z) (HC is normal at each age in this standard). The
standard covers 14+0 to 40+0 weeks (`GA_RANGE_WEEKS`); outside it no centile is given.
Below the 3rd centile a head is small for its age (a sign to look for microcephaly, which
needs more than one measurement to call), above the 97th large for it.

This is the other direction from `fetalhead.ellipse.gestational_age_weeks` (Hadlock 1984),
which estimates the age from the HC: an HC cannot both date a pregnancy and say whether the
head is the right size for its dates. A centile here needs an age known some other way.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["CENTILE_BANDS", "GA_RANGE_WEEKS", "HcForAge", "centile_text", "ga_text", "hc_at_centile_mm",
           "hc_for_age", "hc_mean_mm", "hc_sd_mm", "parse_ga_weeks"]

#: INTERGROWTH-21st HC standard's range: 14+0 to 40+0 weeks of gestation
GA_RANGE_WEEKS: tuple[float, float] = (14.0, 40.0)
#: centiles that bound the usual range of HC for an age (3rd and 97th)
CENTILE_BANDS: tuple[float, float] = (3.0, 97.0)


def _in_range(ga_weeks: float) -> bool:
    lo, hi = GA_RANGE_WEEKS
    return math.isfinite(ga_weeks) and lo - 1e-9 <= ga_weeks <= hi + 1e-9


def hc_mean_mm(ga_weeks: float) -> float:
    """INTERGROWTH-21st mean (= median) HC in mm at `ga_weeks`; nan outside `GA_RANGE_WEEKS`."""
    if not _in_range(ga_weeks):
        return float("nan")
    g, ln = ga_weeks, math.log(ga_weeks)
    return -28.2849 + 1.69267 * g**2 - 0.397485 * g**2 * ln


def hc_sd_mm(ga_weeks: float) -> float:
    """INTERGROWTH-21st standard deviation of HC in mm at `ga_weeks`; nan outside `GA_RANGE_WEEKS`."""
    if not _in_range(ga_weeks):
        return float("nan")
    g, ln = ga_weeks, math.log(ga_weeks)
    return 1.98735 + 0.0136772 * g**3 - 0.00726264 * g**3 * ln + 0.000976253 * g**3 * ln**2


@dataclass(frozen=True)
class HcForAge:
    """An HC (mm) read against the standard at a known age (weeks): its z-score and centile
    (percent), and those of its interval's ends; nan where there is no HC or no usable age."""

    ga_weeks: float
    z: float
    centile: float
    centile_low: float
    centile_high: float

    @property
    def band(self) -> str:
        """"below 3rd centile", "3rd to 97th centile" or "above 97th centile"; "" without a centile."""
        if not math.isfinite(self.centile):
            return ""
        lo, hi = CENTILE_BANDS
        if self.centile < lo:
            return "below 3rd centile"
        return "above 97th centile" if self.centile > hi else "3rd to 97th centile"

    def to_row(self) -> dict[str, float | str]:
        """CSV columns given_ga_weeks, hc_z, hc_centile, hc_centile_low, hc_centile_high, hc_for_age."""
        return {"given_ga_weeks": self.ga_weeks, "hc_z": self.z, "hc_centile": self.centile,
                "hc_centile_low": self.centile_low, "hc_centile_high": self.centile_high,
                "hc_for_age": self.band}


def _centile(hc_mm: float, mean: float, sd: float) -> tuple[float, float]:
    z = (hc_mm - mean) / sd
    return z, 50.0 * math.erfc(-z / math.sqrt(2.0))  # 100 Phi(z), accurate far into the tails


def hc_at_centile_mm(ga_weeks: float, centile: float) -> float:
    """The HC (mm) at `centile` (percent, strictly between 0 and 100) of the standard at
    `ga_weeks`; nan outside `GA_RANGE_WEEKS`."""
    return hc_mean_mm(ga_weeks) + NormalDist().inv_cdf(centile / 100.0) * hc_sd_mm(ga_weeks)


def hc_for_age(hc_mm: float, ga_weeks: float | None,
               interval_mm: tuple[float, float] | None = None) -> HcForAge:
    """HC (mm) at a known gestational age (weeks) against INTERGROWTH-21st: z-score, centile
    (percent) and, given the HC's interval (mm, e.g. `Prediction.hc_interval_mm`), the
    centiles of its ends. No age, an age outside `GA_RANGE_WEEKS` or no HC give nans."""
    nan = float("nan")
    ga = nan if ga_weeks is None else float(ga_weeks)
    mean, sd = hc_mean_mm(ga), hc_sd_mm(ga)
    if not (math.isfinite(hc_mm) and math.isfinite(mean)):
        return HcForAge(ga, nan, nan, nan, nan)
    z, centile = _centile(hc_mm, mean, sd)
    low, high = interval_mm if interval_mm is not None else (nan, nan)
    c_low = _centile(low, mean, sd)[1] if math.isfinite(low) else nan
    c_high = _centile(high, mean, sd)[1] if math.isfinite(high) else nan
    return HcForAge(ga, z, centile, c_low, c_high)


_WEEKS_DAYS = re.compile(r"^\s*(\d{1,2})\s*\+\s*([0-6])\s*$")  # "22+3": 22 weeks and 3 days


def parse_ga_weeks(text: str) -> float:
    """A gestational age as written in obstetrics, "22+3" (weeks + days, days 0-6), or as
    decimal weeks ("22.4"), in weeks. Raises ValueError (a one-line message) otherwise, and
    for ages outside 0-45 weeks."""
    m = _WEEKS_DAYS.match(text)
    if m:
        weeks = int(m.group(1)) + int(m.group(2)) / 7.0
    else:
        try:
            weeks = float(text)
        except ValueError:
            raise ValueError(f"gestational age {text!r}: write weeks+days (22+3) or weeks (22.4)") from None
    if not (0.0 < weeks <= 45.0):  # NaN too
        raise ValueError(f"gestational age {text!r}: must be above 0 and at most 45 weeks")
    return weeks


def ga_text(ga_weeks: float) -> str:
    """Weeks as obstetrics writes them: 22.43 -> "22+3" (whole days, rounded)."""
    days = round(ga_weeks * 7.0)
    return f"{days // 7}+{days % 7}"


def centile_text(centile: float) -> str:
    """A centile (percent) as an ordinal: 3.2 -> "3rd", 50 -> "50th", 0.4 -> "<1st", 99.6 -> ">99th"."""
    n = math.floor(centile + 0.5)  # halves up, as a reader rounds
    if n < 1:
        return "<1st"
    if n > 99:
        return ">99th"
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
