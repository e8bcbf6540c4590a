"""HC for gestational age (fetalhead.growth): the INTERGROWTH-21st standard against its published
centile table, z-scores and centiles against SciPy's normal distribution, the age parser."""

from __future__ import annotations

import math

import pytest
from scipy.stats import norm

from fetalhead.ellipse import gestational_age_weeks
from fetalhead.growth import (
    GA_RANGE_WEEKS,
    centile_text,
    ga_text,
    hc_at_centile_mm,
    hc_for_age,
    hc_mean_mm,
    hc_sd_mm,
    parse_ga_weeks,
)

# The INTERGROWTH-21st fetal HC standard's centile table (Papageorghiou et al. 2014; the
# project's published tables, intergrowth21.ndog.ox.ac.uk), mm, rounded to 0.1 mm:
# week: (3rd, 50th, 97th centile)
PUBLISHED = {
    16: (111.1, 122.9, 134.7),
    20: (158.5, 172.5, 186.5),
    24: (203.5, 219.1, 234.7),
    28: (243.6, 260.4, 277.2),
    32: (276.3, 294.4, 312.5),
    36: (299.2, 319.4, 339.6),
    40: (309.6, 333.9, 358.3),
}


@pytest.mark.parametrize("week", sorted(PUBLISHED))
def test_the_standard_gives_the_published_centiles(week):
    z97 = norm.ppf(0.97)
    mean, sd = hc_mean_mm(week), hc_sd_mm(week)
    got = (mean - z97 * sd, mean, mean + z97 * sd)
    assert got == pytest.approx(PUBLISHED[week], abs=0.06)  # the table's rounding
    assert [hc_at_centile_mm(week, c) for c in (3, 50, 97)] == pytest.approx(got, abs=1e-9)


def test_z_and_centile_follow_the_normal_distribution():
    for ga in (14.0, 22.4, 31.0, 40.0):
        mean, sd = hc_mean_mm(ga), hc_sd_mm(ga)
        for z in (-3.0, -1.0, 0.0, 0.5, 2.2):
            r = hc_for_age(mean + z * sd, ga, (mean + (z - 0.4) * sd, mean + (z + 0.3) * sd))
            assert r.ga_weeks == ga and r.z == pytest.approx(z, abs=1e-12)
            assert r.centile == pytest.approx(100 * norm.cdf(z), abs=1e-9)
            assert (r.centile_low, r.centile_high) == pytest.approx(
                (100 * norm.cdf(z - 0.4), 100 * norm.cdf(z + 0.3)), abs=1e-9)


@pytest.mark.parametrize(("centile", "band"), [
    (2.9, "below 3rd centile"), (3.1, "3rd to 97th centile"), (50.0, "3rd to 97th centile"),
    (96.9, "3rd to 97th centile"), (97.1, "above 97th centile")])
def test_bands_at_the_3rd_and_97th_centile(centile, band):
    ga = 25.0
    hc = hc_mean_mm(ga) + norm.ppf(centile / 100) * hc_sd_mm(ga)
    r = hc_for_age(hc, ga)
    assert r.band == band and r.to_row()["hc_for_age"] == band
    assert math.isnan(r.centile_low) and math.isnan(r.centile_high)  # no interval given


@pytest.mark.parametrize("ga", [13.9, 40.1, None, float("nan")])
def test_no_centile_outside_the_standard_or_without_an_age(ga):
    r = hc_for_age(200.0, ga)
    assert math.isnan(r.z) and math.isnan(r.centile) and r.band == ""
    lo, hi = GA_RANGE_WEEKS
    assert not math.isnan(hc_mean_mm(lo)) and not math.isnan(hc_sd_mm(hi))  # its ends are inside


def test_no_centile_without_a_head():
    r = hc_for_age(float("nan"), 20.0, (float("nan"), float("nan")))
    assert math.isnan(r.centile) and r.band == "" and r.ga_weeks == 20.0


def test_the_standard_and_hadlock_agree_on_a_typical_head():
    """Two independent references: Hadlock's age for the standard's median HC is within a week of
    the age it is the median of, from 14 to 37 weeks (INTERGROWTH-21st's late heads are smaller)."""
    for ga in [14 + 0.5 * k for k in range(47)]:
        assert gestational_age_weeks(hc_mean_mm(ga))[0] == pytest.approx(ga, abs=1.0)
    assert all(hc_mean_mm(g + 0.5) > hc_mean_mm(g) and hc_sd_mm(g) > 0 for g in range(14, 40))


@pytest.mark.parametrize(("text", "weeks"), [
    ("22+3", 22 + 3 / 7), (" 22 + 0 ", 22.0), ("9+6", 9 + 6 / 7), ("22.4", 22.4), ("40", 40.0)])
def test_ages_as_obstetrics_writes_them(text, weeks):
    assert parse_ga_weeks(text) == pytest.approx(weeks)


@pytest.mark.parametrize(("text", "words"), [
    ("22+7", "weeks+days"), ("22+", "weeks+days"), ("soon", "weeks+days"), ("", "weeks+days"),
    ("0", "above 0 and at most 45"), ("-3", "above 0 and at most 45"), ("46", "above 0 and at most 45"),
    ("nan", "above 0 and at most 45"), ("inf", "above 0 and at most 45")])
def test_bad_ages_are_one_line_errors(text, words):
    with pytest.raises(ValueError) as e:
        parse_ga_weeks(text)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_texts_of_ages_and_centiles():
    assert [ga_text(w) for w in (22 + 3 / 7, 40.0, 19.99, 13 + 6.6 / 7)] == ["22+3", "40+0", "20+0", "14+0"]
    got = [centile_text(c) for c in (0.4, 0.5, 1.2, 2.0, 3.4, 4.0, 11.0, 12.0, 13.0, 21.0, 22.2, 23.0, 50.0,
                                     99.4, 99.5)]
    assert got == ["<1st", "1st", "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd",
                   "50th", "99th", ">99th"]
