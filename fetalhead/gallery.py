"""The HTML page of a run, `index.html` (`compare.html` for a comparison) beside its files, to look through in any browser
without Python or Jupyter. The page links the image files by name (no copy of the pixels),
escapes every value and holds no script.

- `gallery_html`, for `fetalhead predict`: every measurement with its overlay; those flagged
  for review and those without a head first (the ones that need a look), then the rest, each
  in the order of `predictions.csv`.
- `report_html`, for `fetalhead evaluate` (and `fetalhead main`): the summary table with its
  intervals, how often the HC intervals held, and the report's figures.
- `compare_html`, for `fetalhead compare`: its findings, the per-image table and its plot.
"""

from __future__ import annotations

import html
import math
import urllib.parse
from collections.abc import Sequence
from typing import Any

from fetalhead.growth import centile_text, ga_text
from fetalhead.interval import COVERAGE

__all__ = ["COMPARE_HTML", "GALLERY_HTML", "STATUS_ORDER", "compare_html", "gallery_html", "report_html"]

#: the page's file name in a `predict` output folder and an `evaluate` report folder
GALLERY_HTML = "index.html"
#: the page's file name in a `compare` folder (often the predict folder it reads: its own name)
COMPARE_HTML = "compare.html"
#: statuses in the order the page shows them: what needs a look first
STATUS_ORDER = ("review", "no head found", "ok")

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:6px 10px;text-align:left;vertical-align:top}
th{background:#f4f4f4}img{width:320px;display:block}.review{color:#b35c00;font-weight:bold}
.nohead{color:#c62828;font-weight:bold}.ok{color:#2e7d32}small{color:#666}"""


def _number(value: Any, fmt: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return format(v, fmt) if math.isfinite(v) else ""


def _link(name: str) -> str:
    """The attribute value that links the file `name` beside the page, whatever its characters
    (a "#", "%" or "?" is part of the name, not of the address; a "javascript:" is a name)."""
    return html.escape("./" + urllib.parse.quote(name), quote=True)


def _for_age(row: dict[str, Any]) -> str:
    """With a known age: the HC's INTERGROWTH-21st centile and band, and its interval's centiles."""
    if not _number(row.get("hc_centile"), ".1f"):
        return ""
    centile, low, high = (html.escape(centile_text(float(row[k])))
                          for k in ("hc_centile", "hc_centile_low", "hc_centile_high"))
    return (f"<br>{centile} centile for {html.escape(ga_text(float(row['given_ga_weeks'])))} weeks "
            f"<small>({low} to {high}; {html.escape(str(row.get('hc_for_age', '')))}; INTERGROWTH-21st)</small>")


def _cells(row: dict[str, Any], overlay: str) -> str:
    name = html.escape(str(row["filename"]))
    if row.get("frame") not in (None, ""):
        name += f" <small>frame {html.escape(str(row['frame']))}</small>"
    status = str(row["status"])
    css = {"review": "review", "no head found": "nohead"}.get(status, "ok")
    hc = _number(row.get("hc_mm"), ".1f")
    low, high = _number(row.get("hc_low_mm"), ".1f"), _number(row.get("hc_high_mm"), ".1f")
    extrapolated = " <small>(outside Hadlock's range)</small>" if str(row.get("ga_in_range")) == "False" else ""
    measured = (f"HC <b>{hc} mm</b> <small>({100 * COVERAGE:g} % interval {low} to {high})</small><br>"
                f"GA {_number(row.get('ga_weeks'), '.1f')} weeks{extrapolated}<br>"
                f"BPD {_number(row.get('bpd_mm'), '.1f')} mm, OFD {_number(row.get('ofd_mm'), '.1f')} mm<br>"
                f"cephalic index {_number(row.get('cephalic_index'), '.1f')} "
                f"<small>({html.escape(str(row.get('head_shape', '')))})</small>{_for_age(row)}") if hc else ""
    quality = _number(row.get("quality"), ".2f")
    return (f'<td><a href="{_link(overlay)}"><img src="{_link(overlay)}" '
            f'alt="{html.escape(overlay, quote=True)}" loading="lazy"></a></td>'
            f'<td>{name}<br><small>{_number(row.get("pixel_size_mm"), ".4f")} mm per pixel</small></td>'
            f'<td class="{css}">{html.escape(status)}'
            f'{f"<br><small>quality {quality}</small>" if quality else ""}</td><td>{measured}</td>')


def gallery_html(rows: Sequence[dict[str, Any]], overlays: Sequence[str], title: str = "fetalhead predict",
                 model: str | None = None) -> str:
    """The page for `rows` (rows of predictions.csv, as dicts) and the file name of each one's
    overlay (`overlays`, the same order): a summary line (and the `model` that measured them,
    one line of text), then a table with the statuses in `STATUS_ORDER` (each in the rows' order)."""
    if len(rows) != len(overlays):
        raise ValueError(f"{len(rows)} rows but {len(overlays)} overlays")
    rank = {s: i for i, s in enumerate(STATUS_ORDER)}
    order = sorted(range(len(rows)), key=lambda i: (rank.get(str(rows[i]["status"]), len(rank)), i))
    counts = {s: sum(str(r["status"]) == s for r in rows) for s in STATUS_ORDER}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    body = "\n".join(f"<tr>{_cells(rows[i], overlays[i])}</tr>" for i in order)
    measured_by = f"<p>Measured by {html.escape(model)}.</p>\n" if model else ""
    return _page(title, f"<p>{len(rows)} measurements: {summary}. Flagged ones first; "
                        "research and teaching use only, not a medical device.</p>\n"
                        f"{measured_by}"
                        "<table><tr><th>overlay</th><th>image</th><th>status</th><th>measurement</th></tr>\n"
                        f"{body}\n</table>")


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def report_html(summary: dict[str, Any], figures: Sequence[str], title: str = "fetalhead evaluate") -> str:
    """The page of an evaluation report from its summary (`summary.json`'s dict: n_images,
    n_no_head, metrics {name: mean, ci_low, ci_high, median, n}, hc_interval, and the
    training_run of the weights measured when known) and the file names of its figures,
    relative to the page (shown in that order)."""
    rows = []
    for name, m in summary["metrics"].items():
        cells = [_number(m.get(k), ".4f") for k in ("mean", "ci_low", "ci_high", "median")]
        rows.append(f"<tr><td>{html.escape(str(name))}</td><td><b>{cells[0]}</b></td><td>{cells[1]} to {cells[2]}</td>"
                    f"<td>{cells[3]}</td><td>{_number(m.get('n'), '.0f')}</td></tr>")
    held = summary.get("hc_interval") or {}
    interval = (f"<p>The reference HC lies inside the measured HC's {100 * COVERAGE:g} % interval for "
                f"{held['n_inside']} of {held['n']} images.</p>") if held.get("n") else ""
    pictures = _pictures(figures)
    run = summary.get("training_run")
    measured_by = f"<p>Measured by the weights of training run {html.escape(str(run))}.</p>\n" if run else ""
    body = (measured_by + f"<p>{int(summary['n_images'])} images, {int(summary['n_no_head'])} without a head found. Means with "
            "95 % intervals (bootstrap over examinations); Dice and accuracy as fractions, distances and HC in mm. "
            f'Per image: <a href="{_link("metrics_per_image.csv")}">metrics_per_image.csv</a>.</p>\n'
            "<table><tr><th>metric</th><th>mean</th><th>95 % interval</th><th>median</th><th>n</th></tr>\n"
            + "\n".join(rows) + f"\n</table>\n{interval}\n{pictures}")
    return _page(title, body)


def _pictures(figures: Sequence[str]) -> str:
    return "\n".join(f'<p><img src="{_link(f)}" alt="{html.escape(f, quote=True)}" '
                     f'style="width:min(100%, 900px)"></p>' for f in figures)


def compare_html(lines: Sequence[str], table_file: str, figures: Sequence[str],
                 title: str = "fetalhead compare") -> str:
    """The page of a `fetalhead compare` folder: its findings (the lines it prints), a link to
    its per-image table `table_file` and its figures (file names relative to the page)."""
    findings = "\n".join(f"<p>{html.escape(line)}</p>" for line in lines)
    return _page(title, f"{findings}\n<p>Per image: <a href=\"{_link(table_file)}\">{html.escape(table_file)}</a>; "
                        "research and teaching use only, not a medical device.</p>\n" + _pictures(figures))

