"""The practice audit as one self-contained HTML page (figures are PNGs embedded as data: URIs).

No script, no style sheet, font or image from the network: the page opens from a file on a machine
without internet access.  The figures come from :func:`daemon.registry.measures.compute_audit`.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Callable
from typing import Any

STYLE = """
body{font-family:sans-serif;margin:2em;max-width:1100px;color:#222}
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.note{color:#555;font-size:.9em}.warn{color:#a40}
img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
"""


def _fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        return f"{value:.{digits}f}{suffix}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return html.escape(str(value)) + suffix


def _table(head: list[str], rows: list[list[Any]], *, left: int = 1) -> str:
    out = [
        "<table><tr>"
        + "".join(f"<th{' class=l' if i < left else ''}>{html.escape(h)}</th>" for i, h in enumerate(head))
        + "</tr>"
    ]
    for r in rows:
        out.append(
            "<tr>"
            + "".join(
                f"<td{' class=l' if i < left else ''}>{c if isinstance(c, str) else _fmt(c)}</td>"
                for i, c in enumerate(r)
            )
            + "</tr>"
        )
    return "".join(out) + "</table>"


def _png(draw: Callable[[Any], None], *, width_in: float = 7.5, height_in: float = 3.2) -> str:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    draw(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _categories_figure(a: dict[str, Any]) -> str:
    rounds = a["per_round"]
    cats = list(a["category_distribution"])

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        width = 0.8 / max(1, len(rounds))
        for i, r in enumerate(rounds):
            ax.bar(
                [j + i * width for j in range(len(cats))],
                [r["category_pct"][c] or 0 for c in cats],
                width,
                label=f"round {r['round']} (n={r['exams']})",
            )
        for j, c in enumerate(cats):
            band = a["category_distribution"][c]["expected_pct"]
            if band:
                ax.hlines(list(band), j - 0.1, j + 0.8, colors="k", linestyles="dotted")
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cats))], [f"Cat {c}" for c in cats])
        ax.set_ylabel("% of exams in round")
        ax.set_title("Category distribution by screening round")
        ax.legend(fontsize=8)

    return _png(draw)


def _dose_figure(d: dict[str, Any]) -> str:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.hist(d["values_mgy"], bins=40, color="#4a7")
        ax.axvline(d["target_mgy"], color="r", linestyle="--", label=f"target {d['target_mgy']:g} mGy")
        ax.set_xlabel("CTDIvol (mGy)")
        ax.set_ylabel("exams")
        ax.set_title("CTDIvol of the screening series")
        ax.legend()

    return _png(draw)


def _turnaround_figure(t: dict[str, Any]) -> str:
    stages = [k for k in t if t[k]["n"]]

    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        xs = range(len(stages))
        ax.bar([x - 0.2 for x in xs], [t[s]["p50"] for s in stages], 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [t[s]["p95"] for s in stages], 0.4, label="p95")
        ax.set_xticks(list(xs), [s.replace("_", " ") for s in stages])
        ax.set_ylabel("minutes")
        ax.set_title("Turnaround per stage")
        ax.legend()

    return _png(draw, height_in=2.8)


def _radiologist_figure(rows: list[dict[str, Any]]) -> str:
    def draw(fig: Any) -> None:
        ax = fig.add_subplot()
        ax.barh([r["radiologist"] for r in rows], [r["positive_pct"] or 0 for r in rows], color="#57a")
        ax.set_xlabel("positive screens (% of exams)")
        ax.set_title("Positive rate per reading radiologist")

    return _png(draw, height_in=max(2.0, 0.4 * len(rows) + 1))


def render_audit(
    a: dict[str, Any], *, site: str = "", identified: bool = False, generated_at: dt.datetime | None = None
) -> str:
    """The audit page."""
    p = a["period"]
    when = (generated_at or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    proto = "NLCSP" if a["protocol"] == "nlcsp" else "Lung-RADS"
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        f"<title>Screening practice audit {p['from']} to {p['to']}</title><style>{STYLE}</style></head><body>",
        f"<h1>Lung cancer screening practice audit{(' &mdash; ' + html.escape(site)) if site else ''}</h1>",
        f"<p>Exams dated {p['from']} to {p['to']}; follow-up counted to {p['as_of']}. Protocol: {proto}. "
        f"Generated {when} by noduled. Participants who opted out are excluded. "
        f"{'Participants are identified by Patient ID.' if identified else 'Participants appear by pseudonymous key.'}</p>",
        f"<h2>Exams and participants</h2><p>{a['exams']} exams of {a['participants']} participants.</p>",
        _table(
            ["round", "exams", "participants"], [[r["round"], r["exams"], r["participants"]] for r in a["per_round"]]
        ),
    ]
    if a["exams"] == 0:
        parts.append("<p class=warn>No exams in this period.</p></body></html>")
        return "".join(parts)
    cats = list(a["category_distribution"])
    parts += [
        "<h2>Category distribution</h2>",
        _table(
            ["", *[f"Cat {c}" for c in cats]],
            [
                [f"round {r['round']}", *[f"{r['categories'][c]} ({_fmt(r['category_pct'][c])}%)" for c in cats]]
                for r in a["per_round"]
            ]
            + [
                [
                    "all",
                    *[
                        f"{a['category_distribution'][c]['exams']} ({_fmt(a['category_distribution'][c]['pct'])}%)"
                        for c in cats
                    ],
                ]
            ]
            + [
                [
                    "expected",
                    *[
                        (
                            f"{b[0]:g}&ndash;{b[1]:g}%"
                            if (b := a["category_distribution"][c]["expected_pct"])
                            else "&ndash;"
                        )
                        for c in cats
                    ],
                ]
            ],
        ),
    ]
    if not any(v["expected_pct"] for v in a["category_distribution"].values()):
        parts.append(
            "<p class=note>No expected bands configured ([registry] expected_category_pct): the protocol "
            "publishes none, so the distribution is shown without them.</p>"
        )
    parts += [
        _categories_figure(a),
        "<h2>Positive rate</h2>",
        f"<p>Positive screens ({'Categories 5 and 6' if a['protocol'] == 'nlcsp' else 'Categories 3 and 4'}): "
        f"<b>{a['positive']}</b> of {a['exams']} = <b>{_fmt(a['positive_rate_pct'])}%</b>. "
        f"Negative screens ({'Category 1' if a['protocol'] == 'nlcsp' else 'Categories 1 and 2'}): "
        f"{a['negative']} = {_fmt(a['negative_rate_pct'])}%.</p>",
    ]
    ad = a["adherence"]
    parts += [
        "<h2>Adherence to the recommended next scan</h2>",
        f"<p>Of {ad['evaluable']} exams whose recommended scan date plus {ad['tolerance_days']} days has passed, "
        f"<b>{ad['adherent']}</b> returned in time (<b>{_fmt(ad['adherence_pct'])}%</b>; {ad['early']} early), "
        f"{ad['late']} returned late, <b>{ad['overdue']}</b> are overdue.</p>",
    ]
    if ad["overdue_list"]:
        shown = ad["overdue_list"][:200]
        parts.append(
            _table(
                ["participant", "exam date", "category", "due date", "days overdue"],
                [
                    [
                        html.escape(o["participant"]),
                        _fmt(o["exam_date"]),
                        _fmt(o["category"]),
                        _fmt(o["due_date"]),
                        o["days_overdue"],
                    ]
                    for o in shown
                ],
                left=3,
            )
        )
        if len(ad["overdue_list"]) > len(shown):
            parts.append(
                f"<p class=note>{len(ad['overdue_list']) - len(shown)} more overdue follow-ups not shown "
                f"(noduled export lists them all).</p>"
            )
    o = a["outcomes"]
    parts.append("<h2>Outcomes: PPV, cancer detection rate, interval cancers</h2>")
    if o["recorded"] == 0:
        parts.append(
            "<p class=warn><b>No outcomes recorded</b> for these participants: PPV, cancer detection rate and "
            "interval cancers cannot be given. Record follow-up with <code>noduled outcomes import</code>.</p>"
        )
    else:
        parts.append(
            _table(
                ["measure", "value"],
                [
                    ["outcomes recorded", o["recorded"]],
                    ["lung cancers recorded", o["lung_cancers"]],
                    ["screen-detected cancers (within 12 months of a positive screen)", o["screen_detected"]],
                    ["PPV of a positive screen", _fmt(o["ppv_pct"], 1, "%")],
                    ["cancer detection rate per 1,000 exams", _fmt(o["detection_rate_per_1000"], 2)],
                    ["interval cancers (within 12 months of a negative screen)", o["interval_cancers"]],
                    [
                        "interval cancers per 1,000 negative screens",
                        _fmt(o["interval_cancer_rate_per_1000_negative"], 2),
                    ],
                    ["cancers after other categories", o["cancers_after_other_categories"]],
                ],
            )
        )
        if o["exams_with_incomplete_follow_up"]:
            parts.append(
                f"<p class=note>{o['exams_with_incomplete_follow_up']} exams have less than 12 months of follow-up "
                "by the as-of date; their cancers may not be recorded yet.</p>"
            )
    d = a["dose"]
    parts += [
        "<h2>Radiation dose</h2>",
        f"<p>CTDIvol known for {d['exams_with_ctdivol']} exams ({d['exams_without_ctdivol']} without). "
        f"Mean <b>{_fmt(d['ctdivol_mean_mgy'], 2)} mGy</b> (p50 {_fmt(d['ctdivol_p50_mgy'], 2)}, p95 {_fmt(d['ctdivol_p95_mgy'], 2)}); "
        f"<b>{_fmt(d['at_or_below_target_pct'])}%</b> at or below {d['target_mgy']:g} mGy (standard-size patient). "
        f"Mean DLP {_fmt(d['dlp_mean_mgycm'], 1)} mGy&middot;cm.</p>",
    ]
    if d["values_mgy"]:
        parts.append(_dose_figure(d))
    if d["outliers_by_scanner_protocol"]:
        parts.append("<p>Exams above the target, by scanner and protocol:</p>")
        parts.append(
            _table(
                ["scanner", "protocol", "exams over target"],
                [
                    [html.escape(r["scanner"]), html.escape(r["protocol"]), r["exams_over_target"]]
                    for r in d["outliers_by_scanner_protocol"]
                ],
                left=2,
            )
        )
    t = a["turnaround_min"]
    parts += [
        "<h2>Turnaround</h2>",
        _table(
            ["stage", "exams", "p50 (min)", "p95 (min)"],
            [[k.replace("_", " "), v["n"], v["p50"], v["p95"]] for k, v in t.items()],
        ),
    ]
    if any(v["n"] for v in t.values()):
        parts.append(_turnaround_figure(t))
    q = a["ai_quality"]
    parts += [
        "<h2>AI quality</h2>",
        _table(
            ["measure", "count", "rate"],
            [
                [
                    "seeds that found no nodule",
                    q["seeds_without_nodule"],
                    _fmt(q["seeds_without_nodule_pct"], 1, "% of seeds"),
                ],
                [
                    "volumetry unreliable (mean diameter used)",
                    q["volumetry_unreliable"],
                    _fmt(q["volumetry_unreliable_pct"], 1, "% of nodules"),
                ],
                [
                    "composition set by the reader (over the algorithm)",
                    q["reader_composition"],
                    _fmt(q["reader_composition_pct"], 1, "% of nodules"),
                ],
            ],
        ),
    ]
    s = a["smoking"]
    parts.append(
        f"<h2>Participants</h2><p>Current smokers: {s['current']} of {s['known']} with known smoking status "
        f"({_fmt(s['current_pct'])}%); by status: "
        + ", ".join(f"{html.escape(k)} {v}" for k, v in sorted(s["by_status"].items()))
        + ".</p>"
    )
    for title, key, rows in (
        ("reading radiologist", "radiologist", a["by_radiologist"]),
        ("scanner", "scanner", a["by_scanner"]),
    ):
        parts.append(f"<h2>By {title}</h2>")
        parts.append(
            _table(
                [title, "exams", "positive", "positive %", "mean CTDIvol (mGy)", "CTDIvol over target"],
                [
                    [
                        html.escape(r[key]),
                        r["exams"],
                        r["positive"],
                        r["positive_pct"],
                        _fmt(r["ctdivol_mean_mgy"], 2),
                        r["ctdivol_over_target"],
                    ]
                    for r in rows
                ],
            )
        )
        if key == "radiologist" and rows:
            parts.append(_radiologist_figure(rows))
    parts.append(
        "<h2>Definitions</h2><p class=note>Negative screen = Category 1, positive = Categories 5 and 6 (NLCSP "
        "Practice Audit Definitions, note 4). Adherent = next exam on or before the recommended date plus the "
        "tolerance. Lung cancer = invasive lung cancer, minimally invasive adenocarcinoma, adenocarcinoma in situ "
        "or carcinoid, diagnosed within 12 months after the exam. Round = the participant's nth exam.</p>"
    )
    parts.append("</body></html>")
    return "".join(parts)
