"""The HTML page of a predict run: flagged measurements first, every value escaped, nothing lost."""

from __future__ import annotations

import math

import pytest
from pages import linked

from fetalhead.gallery import COMPARE_HTML, GALLERY_HTML, STATUS_ORDER, gallery_html


def _row(name, status, hc=180.0, quality=0.9, frame=None):
    measured = status != "no head found"
    nan = math.nan
    row = {"filename": name, "status": status, "quality": quality if measured else nan, "pixel_size_mm": 0.12,
           "hc_mm": hc if measured else nan, "hc_low_mm": hc - 4 if measured else nan,
           "hc_high_mm": hc + 4 if measured else nan, "ga_weeks": 20.5 if measured else nan,
           "ga_in_range": measured, "bpd_mm": 50.0 if measured else nan, "ofd_mm": 64.0 if measured else nan,
           "cephalic_index": 78.125 if measured else nan, "head_shape": "normal" if measured else ""}
    return row if frame is None else {**row, "frame": frame}


def test_flagged_and_headless_measurements_come_first_in_the_csvs_order():
    rows = [_row("a.png", "ok"), _row("b.png", "review", quality=0.3), _row("c.png", "no head found"),
            _row("d.png", "review", quality=0.5), _row("e.png", "ok")]
    page = gallery_html(rows, [f"{r['filename'][0]}_overlay.png" for r in rows])
    assert STATUS_ORDER == ("review", "no head found", "ok") and GALLERY_HTML == "index.html"
    assert COMPARE_HTML == "compare.html"
    assert linked(page) == [f"{c}_overlay.png" for c in "bdcae"]
    assert "5 measurements: 2 review, 1 no head found, 2 ok." in page
    assert "HC <b>180.0 mm</b> <small>(90 % interval 176.0 to 184.0)</small>" in page
    assert "BPD 50.0 mm, OFD 64.0 mm" in page and "cephalic index 78.1 <small>(normal)</small>" in page
    assert "not a medical device" in page and "<script" not in page
    assert "outside Hadlock's range" not in page
    assert "Measured by" not in page
    named = gallery_html(rows[:1], ["a_overlay.png"], model="shipped model small <w8>")
    assert "<p>Measured by shipped model small &lt;w8&gt;.</p>" in named  # the model named, escaped
    early = gallery_html([{**_row("f.png", "ok", hc=70.0), "ga_in_range": False}], ["f_overlay.png"])
    assert "weeks <small>(outside Hadlock's range)</small>" in early


def test_a_headless_row_shows_no_numbers_and_names_are_escaped():
    rows = [_row("<b>x</b>.png", "no head found"), _row('q"uote.png', "ok", frame="3")]
    page = gallery_html(rows, ['<b>x</b>_overlay.png', 'q"uote_overlay.png'])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;.png" in page
    assert linked(page) == ["<b>x</b>_overlay.png", 'q"uote_overlay.png'] and "frame 3" in page
    assert 'alt="q&quot;uote_overlay.png"' in page
    headless = page.split("<tr>")[2]  # the first row after the header
    assert "nan" not in headless.lower() and "HC" not in headless and 'class="nohead"' in headless


@pytest.mark.parametrize("name", ["a b#1.png", "pct%20x.png", "q?x.png", "scan:1.png", "javascript:alert(1);x.png",
                                  "back\\slash.png", "é中文.png", "-dash &amp.png"])
def test_a_link_opens_the_file_whatever_its_name(name):
    overlay = name.replace(".png", "_overlay.png")
    page = gallery_html([_row(name, "ok")], [overlay])
    assert linked(page) == linked(page, "href") == [overlay]
    assert 'href="javascript' not in page and "<script" not in page


def test_rows_and_overlays_must_pair_up():
    with pytest.raises(ValueError, match="2 rows but 1 overlays"):
        gallery_html([_row("a.png", "ok"), _row("b.png", "ok")], ["a_overlay.png"])


def test_the_report_page_shows_the_summary_and_the_figures_it_is_given():
    from fetalhead.gallery import report_html

    summary = {"n_images": 160, "n_no_head": 1,
               "metrics": {"dice": {"mean": 0.97541, "ci_low": 0.969, "ci_high": 0.9789, "median": 0.978, "n": 160},
                           "hc_abs_error_mm": {"mean": 2.1518, "ci_low": 1.79, "ci_high": 2.68, "median": 1.66,
                                               "n": 159}},
               "hc_interval": {"n_inside": 144, "n": 159}}
    page = report_html(summary, ["figures/a.png", "figures/<b>.png"])
    assert "160 images, 1 without a head found" in page
    assert "<tr><td>dice</td><td><b>0.9754</b></td><td>0.9690 to 0.9789</td><td>0.9780</td><td>160</td></tr>" in page
    assert "<td>hc_abs_error_mm</td><td><b>2.1518</b></td>" in page and "<td>159</td>" in page
    assert "inside the measured HC's 90 % interval for 144 of 159 images" in page
    assert linked(page) == ["figures/a.png", "figures/<b>.png"]
    assert linked(page, "href") == ["metrics_per_image.csv"]
    assert "<script" not in page
    assert "interval for" not in report_html({**summary, "hc_interval": {}}, [])
    assert "Measured by" not in page  # no run known
    named = report_html({**summary, "training_run": "run_<1>"}, [])
    assert "<p>Measured by the weights of training run run_&lt;1&gt;.</p>" in named
