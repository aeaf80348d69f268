"""The report's species totals: the validation photos as one sample, as springtail-count
reports a folder (each species' estimate with its 90 % interval, the plain count, the boxes
to check by hand) beside the experts' boxes of those photos."""

from __future__ import annotations

from html import escape

import pandas as pd

from springtail.report.html import Section

LEAD = ("The validation photos counted as one sample, as springtail-count counts a folder. "
        "Estimate: the species' total corrected for the detector's misses and false boxes and for "
        "the classifier's confusion; the 90 % interval is meant to hold the true total in 9 samples of "
        "10 (how often it did on the demos, species by species: the counting docs). cc is the plain "
        "count of boxes named so; boxes to check have a species probability below 0.5. These photos "
        "also calibrated the correction, so the match with the annotated column is optimistic.")


def totals_section(totals: pd.DataFrame, annotated: dict[str, int]) -> Section:
    """``totals``: the detect stage's totals.csv; ``annotated``: species -> boxes the experts
    drew on the same photos."""
    head = "".join(f"<th>{escape(h)}</th>" for h in
                   ("species", "annotated", "estimate", "90 % interval", "cc", "boxes to check"))
    rows = "".join(
        f'<tr><td class="code">{escape(str(r.species))}</td><td>{annotated.get(r.species, 0)}</td>'
        f"<td>{r.estimate:.1f}</td><td>{int(r.low)} – {int(r.high)}</td><td>{int(r.cc)}</td>"
        f"<td>{int(r.boxes_to_check)}</td></tr>" for r in totals.itertuples())
    body = f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return Section("totals", "Species totals", escape(LEAD), body)
