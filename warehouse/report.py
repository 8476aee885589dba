"""The release report: one self-contained HTML file a steering group can open offline.

Why a hand-drawn SVG report: releases must open anywhere without network (no CDN scripts or
fonts) and the platform adds no plotting dependency, so every figure is inline SVG written here.
The report reads only the release's marts (never restricted data), shows small cells the way
mart_site_quality hides them, and is deterministic: the same marts and manifest give the same
bytes, so a rebuilt release can be compared file by file.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import yaml

from ingestion.settings import DBT_PROJECT_DIR

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
CATEGORY_COLOURS = {
    "recovered": "#009E73",
    "improved": "#56B4E9",
    "unchanged": "#999999",
    "deteriorated": "#E69F00",
    "harmed": "#D55E00",
}
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class Anchor:
    """A published pooled estimate drawn beside the consortium's own."""

    label: str
    r: float
    ci_low: float
    ci_high: float
    note: str


FLUCKIGER_2018 = Anchor(
    label="Flückiger et al. 2018 (published)",
    r=0.278,
    ci_low=0.256,
    ci_high=0.299,
    note="meta-analysis of 295 studies, more than 30,000 patients; three-level REML",
)


# --------------------------------------------------------------------------- entry point


def render_report(marts_db: Path, manifest: dict, out_path: Path) -> Path:
    """Write report.html for the marts in `marts_db` (a release's marts.duckdb or a build).

    `manifest` is the release manifest (or the part of it known when the report is drawn):
    release_id, logical_date, event_log_version, registry_sha256, parameters (the dbt vars the
    build used), dbt and gx are used when present. Returns `out_path`.
    """
    recorded = manifest.get("parameters") or manifest.get("dbt_vars") or {}
    params = {**dbt_vars(), **recorded}
    data = _load(Path(marts_db))
    body = "\n".join(
        [
            _header(manifest, data),
            _headline(data),
            _forest_section(data),
            _pooled_table(data),
            _trajectory_section(data, params),
            _rupture_section(data, params),
            _scatter_section(data),
            _kpi_section(data, params),
            _therapist_section(data, params),
            _intake_section(data),
            _quality_section(data, manifest),
            _methods_section(params),
        ]
    )
    title = f"Bordin release report {manifest.get('release_id', '')}".strip()
    document = _PAGE.format(title=_e(title), css=_CSS, body=body)
    out_path = Path(out_path)
    out_path.write_text(document, encoding="utf-8")
    return out_path


def dbt_vars(project_dir: Path = DBT_PROJECT_DIR) -> dict[str, Any]:
    """The parameter defaults of dbt_project.yml, for a manifest that does not record them."""
    doc = yaml.safe_load((project_dir / "dbt_project.yml").read_text(encoding="utf-8"))
    return dict(sorted((doc.get("vars") or {}).items()))


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class ReportData:
    tables: frozenset[str]
    site: list[dict]
    pooled: list[dict]
    trajectories: list[dict]
    sessions_ruptured: list[dict]
    episodes: list[dict]
    quality: list[dict]
    therapists: list[dict]
    intake: list[dict]


def _load(db: Path) -> ReportData:
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = frozenset(
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_catalog = current_database() OR table_schema = 'marts'"
            ).fetchall()
        )

        def rows(table: str, sql: str) -> list[dict]:
            if table not in tables:
                return []
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, map(_clean, row), strict=True)) for row in cursor.fetchall()]

        return ReportData(
            tables=tables,
            site=rows(
                "mart_alliance_outcome_site",
                "SELECT * FROM marts.mart_alliance_outcome_site "
                "ORDER BY site_id, alliance_instrument, outcome_instrument, rater_role",
            ),
            pooled=rows(
                "mart_alliance_outcome_pooled",
                "SELECT * FROM marts.mart_alliance_outcome_pooled "
                "ORDER BY scope, rater_role, correlation_type, method",
            ),
            trajectories=rows(
                "fct_alliance_session",
                # The primary alliance series per site (the measure of its primary row).
                "SELECT a.site_id, a.session_number, count(a.pomp_total) AS n, "
                "avg(a.pomp_total) AS mean, stddev_samp(a.pomp_total) AS sd "
                "FROM marts.fct_alliance_session AS a "
                "JOIN marts.mart_alliance_outcome_site AS s ON a.site_id = s.site_id "
                "AND a.instrument = s.alliance_instrument AND a.rater_role = s.rater_role "
                "AND s.is_primary GROUP BY ALL ORDER BY a.site_id, a.session_number",
            ),
            sessions_ruptured=rows(
                "fct_alliance_session",
                "SELECT a.site_id, count(a.rupture_k1) AS n_evaluated, "
                "count(*) FILTER (WHERE a.rupture_k1) AS n_k1, "
                "count(*) FILTER (WHERE a.rupture_k2) AS n_k2, "
                "count(a.repaired_k1) AS n_k1_followed, "
                "count(*) FILTER (WHERE a.repaired_k1) AS n_k1_repaired "
                "FROM marts.fct_alliance_session AS a "
                "JOIN marts.mart_alliance_outcome_site AS s ON a.site_id = s.site_id "
                "AND a.instrument = s.alliance_instrument AND a.rater_role = s.rater_role "
                "AND s.is_primary GROUP BY a.site_id ORDER BY a.site_id",
            ),
            episodes=rows(
                "fct_episode_outcome",
                "SELECT instrument, baseline_score, final_score, jt_category, jt_s_diff, "
                "jt_cutoff FROM marts.fct_episode_outcome WHERE final_score IS NOT NULL "
                "ORDER BY instrument, baseline_score, final_score, jt_category NULLS FIRST",
            ),
            quality=rows(
                "mart_site_quality", "SELECT * FROM marts.mart_site_quality ORDER BY site_id"
            ),
            therapists=rows(
                "mart_alliance_outcome_therapist",
                "SELECT site_id, any_value(site_n_therapists) AS n_therapists, "
                "any_value(site_between_therapist_r) AS between_r, "
                "any_value(site_within_therapist_r) AS within_r, sum(n_clients) AS n_clients "
                "FROM marts.mart_alliance_outcome_therapist GROUP BY site_id ORDER BY site_id",
            ),
            intake=rows(
                "mart_site_intake", "SELECT * FROM marts.mart_site_intake ORDER BY site_id"
            ),
        )
    finally:
        con.close()


def _clean(value: Any) -> Any:
    """NaN -> None, numpy/decimal -> float, so formatting has one missing-value path."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return None if math.isnan(number) else number


def _headline_rows(data: ReportData) -> dict[str, dict]:
    return {
        p["method"]: p
        for p in data.pooled
        if p.get("scope") == "primary" and p.get("correlation_type") == "raw"
    }


def _primary_sites(data: ReportData) -> list[dict]:
    return [s for s in data.site if s.get("is_primary")]


# --------------------------------------------------------------------------- formatting


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _r(value: float | None, digits: int = 2) -> str:
    """APA style: no leading zero for a correlation (r = .28), a true minus sign."""
    if value is None:
        return "n/a"
    text = f"{abs(value):.{digits}f}"
    if float(text) == 0:
        return "0"
    return ("\u2212" if value < 0 else "") + text.lstrip("0")


def _ci(low: float | None, high: float | None, digits: int = 2) -> str:
    if low is None or high is None:
        return ""
    return f"[{_r(low, digits)}, {_r(high, digits)}]"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


SUPPRESSED = "suppressed"


def _cell(row: dict, value: Any, text: str, threshold: int, sources: Sequence[str]) -> str:
    """A table cell: null because a source count was suppressed reads "suppressed", the same
    for a count, a rate or a mean: never a number-like "<11", which reads as a value."""
    hidden = set((row.get("suppressed_cells") or "").split(","))
    if value is None and hidden & set(sources):
        title = f"suppressed: a count from 1 to {threshold - 1}, or one that would reveal it"
        return f'<td class="hidden" title="{_e(title)}">{SUPPRESSED}</td>'
    return f"<td>{_e(text)}</td>"


def _f(x: float) -> str:
    """SVG coordinates with fixed precision, so the bytes are stable."""
    return f"{x:.1f}"


# --------------------------------------------------------------------------- SVG primitives


@dataclass(frozen=True)
class Scale:
    """Linear map from data to pixels."""

    d0: float
    d1: float
    p0: float
    p1: float

    def __call__(self, value: float) -> float:
        if self.d1 == self.d0:
            return (self.p0 + self.p1) / 2
        return self.p0 + (value - self.d0) * (self.p1 - self.p0) / (self.d1 - self.d0)


def _ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round tick values (1, 2 or 5 x 10^k steps) covering [low, high]."""
    span = high - low
    if span <= 0:
        return [low]
    raw = span / max(target - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks, value = [], first
    while value <= high + 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _svg(width: int, height: int, title: str, parts: Iterable[str]) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(title)}"><title>{_e(title)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{_f(x)}" y="{_f(y)}" text-anchor="{anchor}"{klass}>{_e(text)}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line x1="{_f(x1)}" y1="{_f(y1)}" x2="{_f(x2)}" y2="{_f(y2)}" class="{cls}"/>'


def _x_axis(scale: Scale, ticks: Sequence[float], y: float, label: str, fmt) -> list[str]:
    parts = [_line(scale.p0, y, scale.p1, y, "axis")]
    for t in ticks:
        x = scale(t)
        parts += [_line(x, y, x, y + 4, "axis"), _text(x, y + 16, fmt(t), "middle", "tick")]
    parts.append(_text((scale.p0 + scale.p1) / 2, y + 34, label, "middle", "axis-label"))
    return parts


def _y_axis(scale: Scale, ticks: Sequence[float], x: float, label: str, fmt) -> list[str]:
    parts = [_line(x, scale.p0, x, scale.p1, "axis")]
    for t in ticks:
        y = scale(t)
        parts += [_line(x - 4, y, x, y, "axis"), _text(x - 7, y + 4, fmt(t), "end", "tick")]
    mid = (scale.p0 + scale.p1) / 2
    parts.append(
        f'<text x="{_f(x - 42)}" y="{_f(mid)}" text-anchor="middle" class="axis-label" '
        f'transform="rotate(-90 {_f(x - 42)} {_f(mid)})">{_e(label)}</text>'
    )
    return parts


def _diamond(x_low: float, x_mid: float, x_high: float, y: float, cls: str) -> str:
    h = 7
    points = (
        f"{_f(x_low)},{_f(y)} {_f(x_mid)},{_f(y - h)} {_f(x_high)},{_f(y)} {_f(x_mid)},{_f(y + h)}"
    )
    return f'<polygon points="{points}" class="{cls}"/>'


# --------------------------------------------------------------------------- sections


def _header(manifest: dict, data: ReportData) -> str:
    facts = [
        ("release", manifest.get("release_id", "(not yet published)")),
        ("logical date", manifest.get("logical_date", "n/a")),
        ("event-log version", manifest.get("event_log_version", "n/a")),
        ("registry sha256", str(manifest.get("registry_sha256", "n/a"))[:16]),
        ("sites", len(_primary_sites(data))),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    return (
        "<header><h1>Alliance and outcome across sites</h1>"
        '<p class="lead">Bordin release report: does a stronger early alliance go with more '
        "improvement, at every site and pooled; where does the alliance rupture; who recovers."
        f'</p><dl class="facts">{items}</dl></header>'
    )


def _headline(data: ReportData) -> str:
    rows = _headline_rows(data)
    random, fixed = rows.get("random_dl"), rows.get("fixed")
    anchor = FLUCKIGER_2018
    if not random:
        main = "<p>No site had enough clients for a pooled correlation.</p>"
    else:
        pi = (
            f"; 95% prediction interval for a new site {_ci(random['pi_low'], random['pi_high'])}"
            if random.get("pi_low") is not None
            else ""
        )
        main = (
            f'<p class="headline">Pooled r = <strong>{_r(random["r"], 3)}</strong> '
            f"{_ci(random['ci_low'], random['ci_high'], 3)} "
            f'<span class="muted">(random effects, DerSimonian-Laird; {random["k_sites"]:.0f}'
            f" sites, {random['n_clients']:.0f} clients; tau\u00b2 = {random['tau2']:.3f}, "
            f"I\u00b2 = {100 * random['i2']:.0f}%, Q = {random['q']:.2f}{pi})</span></p>"
        )
        if fixed:
            main += (
                f"<p>Fixed effect: r = {_r(fixed['r'], 3)} "
                f"{_ci(fixed['ci_low'], fixed['ci_high'], 3)}.</p>"
            )
    return (
        f'<section id="headline"><h2>Headline</h2>{main}'
        f'<p class="anchor">Published anchor: {_e(anchor.label)}, r = {_r(anchor.r, 3)} '
        f"{_ci(anchor.ci_low, anchor.ci_high, 3)} ({_e(anchor.note)}). A DL pool of one r per "
        "site is not expected to reproduce its point estimate.</p></section>"
    )


def _forest_section(data: ReportData) -> str:
    sites = _primary_sites(data)
    pooled = _headline_rows(data)
    anchor = FLUCKIGER_2018
    row_h, top, left, plot_w, right_w = 30, 40, 230, 420, 230
    n_rows = len(sites) + len(pooled) + 1
    height = top + row_h * (n_rows + 1) + 50
    width = left + plot_w + right_w
    values = [anchor.ci_low, anchor.ci_high, 0.0]
    for item in [*sites, *pooled.values()]:
        bounds = ("ci_low", "ci_high", "pi_low", "pi_high")
        values += [item[b] for b in bounds if item.get(b) is not None]
    low = max(-1.0, math.floor(min(values) * 5) / 5)
    high = min(1.0, math.ceil(max(values) * 5) / 5)
    x = Scale(low, high, left, left + plot_w)
    bottom = top + row_h * n_rows + 10
    parts = [
        f'<rect x="{_f(x(anchor.ci_low))}" y="{top - 10}" width="'
        f'{_f(x(anchor.ci_high) - x(anchor.ci_low))}" height="{bottom - top + 10}" '
        'class="anchor-band"/>',
        _line(x(anchor.r), top - 10, x(anchor.r), bottom, "anchor-line"),
        _line(x(0), top - 10, x(0), bottom, "zero-line"),
        _text(12, top - 16, "Site (primary measures)", "start", "col-head"),
        _text(left + plot_w + 12, top - 16, "r [95% CI]", "start", "col-head"),
        _text(left + plot_w + 160, top - 16, "n", "start", "col-head"),
    ]
    weights = [s["n"] - 3 for s in sites if s.get("fisher_z") is not None]
    max_w = max(weights, default=1)
    y = top + row_h / 2
    for s in sites:
        label = f"{s['site_id']} ({s['alliance_instrument']} \u2192 {s['outcome_instrument']})"
        parts.append(f'<g class="forest-row forest-site" data-site="{_e(s["site_id"])}">')
        parts.append(_text(12, y + 4, label))
        if s.get("fisher_z") is not None:
            size = 5 + 9 * math.sqrt((s["n"] - 3) / max_w)
            parts += [
                _line(x(s["ci_low"]), y, x(s["ci_high"]), y, "ci"),
                f'<rect x="{_f(x(s["r"]) - size / 2)}" y="{_f(y - size / 2)}" '
                f'width="{_f(size)}" height="{_f(size)}" class="site-mark"/>',
                _text(left + plot_w + 12, y + 4, f"{_r(s['r'])} {_ci(s['ci_low'], s['ci_high'])}"),
            ]
        else:
            parts.append(_text(left + plot_w + 12, y + 4, "too few clients", cls="muted"))
        parts += [_text(left + plot_w + 160, y + 4, f"{s['n']:.0f}"), "</g>"]
        y += row_h
    parts.append(_line(12, y - row_h / 2, width - 12, y - row_h / 2, "separator"))
    for method, label in (("fixed", "Pooled, fixed effect"), ("random_dl", "Pooled, random (DL)")):
        p = pooled.get(method)
        if not p:
            continue
        parts.append(f'<g class="forest-row forest-pooled" data-method="{method}">')
        parts.append(_text(12, y + 4, label, cls="strong"))
        if p.get("pi_low") is not None:
            parts.append(_line(x(p["pi_low"]), y, x(p["pi_high"]), y, "pi"))
        parts += [
            _diamond(x(p["ci_low"]), x(p["r"]), x(p["ci_high"]), y, f"pooled-{method}"),
            _text(left + plot_w + 12, y + 4, f"{_r(p['r'], 3)} {_ci(p['ci_low'], p['ci_high'])}"),
            _text(left + plot_w + 160, y + 4, f"{p['n_clients']:.0f}"),
            "</g>",
        ]
        y += row_h
    parts += [
        '<g class="forest-row forest-anchor">',
        _text(12, y + 4, anchor.label, cls="strong"),
        _diamond(x(anchor.ci_low), x(anchor.r), x(anchor.ci_high), y, "anchor-mark"),
        _text(
            left + plot_w + 12, y + 4, f"{_r(anchor.r, 3)} {_ci(anchor.ci_low, anchor.ci_high, 3)}"
        ),
        _text(left + plot_w + 160, y + 4, ">30,000"),
        "</g>",
    ]
    parts += _x_axis(
        x, _ticks(low, high), bottom + 6, "Pearson r, early alliance \u00d7 improvement", _r
    )
    svg = _svg(width, height, "Forest plot of the per-site alliance-outcome correlations", parts)
    return (
        '<section id="forest"><h2>Forest plot</h2>'
        "<p>Each site's primary pair (early alliance on its primary alliance measure, client "
        "rating, with improvement on its primary outcome measure): square = r, sized by weight "
        "(n \u2212 3); line = 95% CI. Diamonds: pooled estimates; dashed line: prediction "
        "interval. The shaded band and its line mark the published anchor.</p>"
        f"{svg}</section>"
    )


def _pooled_table(data: ReportData) -> str:
    rows = [p for p in data.pooled if p["method"] == "random_dl"]
    if not rows:
        return ""
    body = "".join(
        "<tr>"
        f"<td>{_e(p['scope'])}</td><td>{_e(p['rater_role'])}</td>"
        f"<td>{_e(p['correlation_type'])}</td><td>{p['k_sites']:.0f}</td>"
        f"<td>{p['n_clients']:.0f}</td><td>{_r(p['r'], 3)} {_ci(p['ci_low'], p['ci_high'])}</td>"
        f"<td>{p['tau2']:.3f}</td><td>{100 * p['i2']:.0f}%</td>"
        f"<td>{_ci(p.get('pi_low'), p.get('pi_high')) or 'n/a'}</td></tr>"
        for p in rows
    )
    return (
        '<section id="pooled"><h2>Pooled estimates by perspective</h2>'
        "<p>Random-effects (DL) estimates for the primary rows, per rater role on the sites' "
        "primary measures, and for the baseline-residualized r (partial correlation given the "
        "baseline score).</p><table><thead><tr><th>scope</th><th>rater</th><th>correlation</th>"
        "<th>sites</th><th>clients</th><th>r [95% CI]</th><th>tau\u00b2</th><th>I\u00b2</th>"
        f"<th>95% PI</th></tr></thead><tbody>{body}</tbody></table></section>"
    )


def _trajectory_section(data: ReportData, params: dict) -> str:
    threshold = int(params.get("small_cell_threshold", 11))
    by_site: dict[str, list[dict]] = {}
    for row in data.trajectories:
        if row["n"] >= threshold and row["mean"] is not None:
            by_site.setdefault(row["site_id"], []).append(row)
    if not by_site:
        return (
            '<section id="trajectories"><h2>Alliance over sessions</h2><p class="muted">No '
            f"session has at least {threshold} alliance ratings at any site yet.</p></section>"
        )
    width, height, left, top, plot_w, plot_h = 760, 340, 70, 20, 560, 250
    sessions = [r["session_number"] for rows in by_site.values() for r in rows]
    lows, highs = [], []
    for rows in by_site.values():
        for r in rows:
            half = Z_95 * (r["sd"] or 0) / math.sqrt(r["n"])
            lows.append(r["mean"] - half)
            highs.append(r["mean"] + half)
    y_low = max(0.0, math.floor(min(lows) / 10) * 10)
    y_high = min(100.0, math.ceil(max(highs) / 10) * 10)
    x = Scale(min(sessions) - 0.5, max(sessions) + 0.5, left, left + plot_w)
    y = Scale(y_low, y_high, top + plot_h, top)
    parts: list[str] = []
    for i, (site, rows) in enumerate(sorted(by_site.items())):
        colour = PALETTE[i % len(PALETTE)]
        upper, lower, line = [], [], []
        for r in rows:
            half = Z_95 * (r["sd"] or 0) / math.sqrt(r["n"])
            upper.append(f"{_f(x(r['session_number']))},{_f(y(r['mean'] + half))}")
            lower.append(f"{_f(x(r['session_number']))},{_f(y(r['mean'] - half))}")
            line.append(f"{_f(x(r['session_number']))},{_f(y(r['mean']))}")
        parts.append(f'<g class="trajectory" data-site="{_e(site)}">')
        parts.append(
            f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{colour}" class="band"/>'
        )
        parts.append(f'<polyline points="{" ".join(line)}" stroke="{colour}" class="series"/>')
        parts.append(
            f'<rect x="{left + plot_w + 20}" y="{top + 8 + 20 * i}" width="12" height="12" '
            f'fill="{colour}"/>'
        )
        parts.append(_text(left + plot_w + 38, top + 18 + 20 * i, site))
        parts.append("</g>")
    first, last = min(sessions), max(sessions)
    x_ticks = list(range(first, last + 1)) if last - first <= 20 else _ticks(first, last)
    parts += _x_axis(x, x_ticks, top + plot_h, "session", lambda t: f"{t:.0f}")
    parts += _y_axis(y, _ticks(y_low, y_high), left, "alliance, % of maximum", lambda t: f"{t:.0f}")
    svg = _svg(width, height, "Mean alliance by session and site with 95% CI", parts)
    return (
        '<section id="trajectories"><h2>Alliance over sessions</h2>'
        "<p>Mean alliance (primary alliance measure, client rating, as percent of the maximum "
        "possible score so measures compare) by session, with its 95% CI (normal approximation). "
        f"Sessions with fewer than {threshold} ratings at a site are not drawn.</p>{svg}</section>"
    )


def _share(count: float | None, total: float | None, threshold: int) -> float | None:
    """count / total, or None when it would show (or let one derive) a small cell."""
    if count is None or not total:
        return None
    small = [c for c in (count, total - count, total) if 0 < c < threshold]
    return None if small else count / total


def _rupture_section(data: ReportData, params: dict) -> str:
    threshold = int(params.get("small_cell_threshold", 11))
    k1, k2 = params.get("rupture_k_lenient", 1), params.get("rupture_k_strict", 2)
    quality = {q["site_id"]: q for q in data.quality}
    sessions = {s["site_id"]: s for s in data.sessions_ruptured}
    sites = sorted(set(quality) | set(sessions))
    if not sites:
        return ""
    width, left, top, plot_w, bar_h = 760, 150, 20, 460, 13
    block = 2 * (bar_h + 3) + 2 * 16 + 14
    height = top + len(sites) * block + 50
    x = Scale(0, 1, left, left + plot_w)
    parts = [
        _line(x(t), top - 6, x(t), top + len(sites) * block - 8, "grid") for t in (0.25, 0.5, 0.75)
    ]
    y = top
    for site in sites:
        q, s = quality.get(site, {}), sessions.get(site, {})
        parts.append(f'<g class="rupture-site" data-site="{_e(site)}">')
        parts.append(_text(12, y + bar_h + 4, site, cls="strong"))
        for count, label, cls in (("n_k1", f"k = {k1}", "bar-k1"), ("n_k2", f"k = {k2}", "bar-k2")):
            rate = _share(s.get(count), s.get("n_evaluated"), threshold)
            if rate is None:
                parts.append(
                    _text(left + 4, y + bar_h - 2, f"{label}: fewer than {threshold}", cls="muted")
                )
            else:
                parts.append(
                    f'<rect x="{left}" y="{y}" width="{_f(x(rate) - left)}" height="{bar_h}" '
                    f'class="{cls}"/>'
                )
                parts.append(
                    _text(x(rate) + 6, y + bar_h - 2, f"{label}: {_pct(rate)} of sessions")
                )
            y += bar_h + 3
        clients = [
            f"k = {k}: {_pct(q[col]) if q.get(col) is not None else f'<{threshold} (hidden)'}"
            for k, col in ((k1, "rupture_rate_k1"), (k2, "rupture_rate_k2"))
        ]
        parts.append(
            _text(left + 4, y + 11, "clients with a rupture: " + ", ".join(clients), cls="muted")
        )
        repaired = _share(s.get("n_k1_repaired"), s.get("n_k1_followed"), threshold)
        repair_text = _pct(repaired) if repaired is not None else f"fewer than {threshold}"
        parts.append(
            _text(left + 4, y + 27, f"k = {k1} ruptures repaired: {repair_text}", cls="muted")
        )
        parts.append("</g>")
        y += 2 * 16 + 14
    parts += _x_axis(x, [0, 0.25, 0.5, 0.75, 1], y, "share of evaluated sessions", _pct)
    svg = _svg(width, height, "Rupture rates per site", parts)
    return (
        '<section id="ruptures"><h2>Ruptures and repair</h2>'
        f"<p>A rupture is a session whose alliance total is at most the client's own mean minus "
        f"k times the client's own SD (k = {k1} lenient, k = {k2} strict; primary alliance "
        f"measure, client rating, clients with at least {params.get('rupture_min_sessions', 3)} "
        f"rated sessions); it is repaired when a session within "
        f"{params.get('rupture_repair_window', 3)} sessions returns to the client's mean. Bars: "
        "share of evaluated sessions that are ruptures; below them the share of clients with at "
        f"least one (from mart_site_quality, hidden when a count is below {threshold}) and the "
        f"share of ruptures followed by a later session that were repaired.</p>{svg}</section>"
    )


def _scatter_section(data: ReportData) -> str:
    by_measure: dict[str, list[dict]] = {}
    for row in data.episodes:
        by_measure.setdefault(row["instrument"], []).append(row)
    if not by_measure:
        return ""
    figures = [_scatter(instrument, rows) for instrument, rows in sorted(by_measure.items())]
    legend = " ".join(
        f'<span class="legend-item"><span class="swatch" style="background:{c}"></span>'
        f"{_e(name)}</span>"
        for name, c in CATEGORY_COLOURS.items()
    )
    return (
        '<section id="prepost"><h2>Before and after, per outcome measure</h2>'
        "<p>One point per client episode with two or more scores (no identifiers): first score "
        "against last. Diagonal: no change; shaded band: change within the Jacobson-Truax "
        "reliable-change limits (\u00b11.96 S<sub>diff</sub>); dashed lines: the clinical "
        f"cutoff. Colour: Jacobson-Truax category.</p><p>{legend}</p>"
        f'<div class="grid">{"".join(figures)}</div></section>'
    )


def _scatter(instrument: str, rows: list[dict]) -> str:
    size, pad = 330, 50
    values = [v for r in rows for v in (r["baseline_score"], r["final_score"])]
    cutoff = next((r["jt_cutoff"] for r in rows if r.get("jt_cutoff") is not None), None)
    s_diff = next((r["jt_s_diff"] for r in rows if r.get("jt_s_diff") is not None), None)
    low = min(0.0, min(values))
    high = max(values + ([cutoff] if cutoff is not None else []))
    high = math.ceil(high / 5) * 5 if high > 0 else 1.0
    x = Scale(low, high, pad, size - 10)
    y = Scale(low, high, size - pad + 10, 10)
    parts: list[str] = []
    if s_diff is not None:
        band = 1.96 * s_diff
        corners = [(low, low - band), (high, high - band), (high, high + band), (low, low + band)]
        points = " ".join(f"{_f(x(a))},{_f(y(min(max(b, low), high)))}" for a, b in corners)
        parts.append(f'<polygon points="{points}" class="rc-band"/>')
    parts.append(_line(x(low), y(low), x(high), y(high), "diagonal"))
    if cutoff is not None:
        parts += [
            _line(x(cutoff), y(low), x(cutoff), y(high), "cutoff"),
            _line(x(low), y(cutoff), x(high), y(cutoff), "cutoff"),
        ]
    for r in rows:
        colour = CATEGORY_COLOURS.get(r.get("jt_category") or "", "#444444")
        parts.append(
            f'<circle cx="{_f(x(r["baseline_score"]))}" cy="{_f(y(r["final_score"]))}" r="3.2" '
            f'fill="{colour}" class="point"/>'
        )
    ticks = _ticks(low, high, 5)
    parts += _x_axis(x, ticks, size - pad + 10, f"{instrument}: first score", lambda t: f"{t:g}")
    parts += _y_axis(y, ticks, pad, "last score", lambda t: f"{t:g}")
    title = f"{instrument}: first against last score, {len(rows)} episodes"
    return (
        f'<figure class="scatter" data-instrument="{_e(instrument)}">'
        + _svg(size, size + 20, title, parts)
        + f"<figcaption>{_e(title)}</figcaption></figure>"
    )


_KPI_COLUMNS = (
    ("n_clients", "clients", lambda v: f"{v:.0f}"),
    ("n_finished_treatment", "finished", lambda v: f"{v:.0f}"),
    ("dropout_early_rate", "early dropout", _pct),
    ("dropout_below_dose_rate", "below dose", _pct),
    ("dropout_unplanned_rate", "unplanned ending", _pct),
    ("nhs_recovery_rate", "NHS recovery", _pct),
    ("nhs_reliable_improvement_rate", "reliable improvement", _pct),
    ("nhs_reliable_deterioration_rate", "reliable deterioration", _pct),
    ("mean_early_alliance_pomp", "early alliance (% max)", lambda v: f"{v:.0f}"),
    ("rupture_rate_k1", "rupture k1", _pct),
    ("rupture_rate_k2", "rupture k2", _pct),
)
# A rate or mean is hidden when a count it is computed from is (mart_site_quality's rule).
_SOURCES = {
    "dropout_early_rate": ("n_dropout_early", "n_clients"),
    "dropout_below_dose_rate": ("n_dropout_below_dose", "n_clients"),
    "dropout_unplanned_rate": ("n_dropout_unplanned", "n_clients"),
    "nhs_recovery_rate": ("n_nhs_recovered", "n_nhs_recovery_eligible"),
    "nhs_reliable_improvement_rate": ("n_nhs_reliable_improvement", "n_nhs_paired"),
    "nhs_reliable_deterioration_rate": ("n_nhs_reliable_deterioration", "n_nhs_paired"),
    "mean_early_alliance_pomp": ("n_early_alliance",),
    "rupture_rate_k1": ("n_clients_rupture_k1", "n_rupture_evaluable"),
    "rupture_rate_k2": ("n_clients_rupture_k2", "n_rupture_evaluable"),
}


def _kpi_cell(row: dict, column: str, fmt, threshold: int) -> str:
    value = row.get(column)
    text = "n/a" if value is None else fmt(value)
    return _cell(row, value, text, threshold, _SOURCES.get(column, (column,)))


def _kpi_section(data: ReportData, params: dict) -> str:
    if not data.quality:
        return ""
    threshold = int(params.get("small_cell_threshold", 11))
    head = "".join(f"<th>{_e(label)}</th>" for _, label, _ in _KPI_COLUMNS)
    body = "".join(
        f'<tr><th scope="row">{_e(q["site_id"])}</th>'
        + "".join(_kpi_cell(q, col, fmt, threshold) for col, _, fmt in _KPI_COLUMNS)
        + "</tr>"
        for q in data.quality
    )
    return (
        '<section id="kpis"><h2>Per-site KPIs</h2>'
        f"<p>From mart_site_quality. Counts from 1 to {threshold - 1}, and anything that would "
        f"reveal one, are suppressed (shown as {SUPPRESSED}, as is any rate or mean computed "
        f"from them); n/a = not available (e.g. no "
        "ending type delivered yet, or no PHQ-9 and GAD-7 pair).</p>"
        f"<table><thead><tr><th>site</th>{head}</tr></thead><tbody>{body}</tbody></table>"
        "</section>"
    )


def _therapist_section(data: ReportData, params: dict) -> str:
    minimum = params.get("min_clients_per_therapist", 5)
    if not data.therapists:
        return (
            '<section id="therapists"><h2>Therapist effects</h2><p class="muted">No therapist '
            f"has at least {minimum} clients with an early alliance and a change score.</p>"
            "</section>"
        )
    body = "".join(
        f"<tr><td>{_e(t['site_id'])}</td><td>{t['n_therapists']:.0f}</td>"
        f"<td>{t['n_clients']:.0f}</td><td>{_r(t['between_r'])}</td>"
        f"<td>{_r(t['within_r'])}</td></tr>"
        for t in data.therapists
    )
    return (
        '<section id="therapists"><h2>Therapist effects</h2>'
        f"<p>Therapists with at least {minimum} clients. Between: correlation of therapists' "
        "mean early alliance with their clients' mean improvement; within: the same for "
        "clients as deviations from their therapist's means (Baldwin, Wampold & Imel 2007).</p>"
        "<table><thead><tr><th>site</th><th>therapists</th><th>clients</th>"
        "<th>between-therapist r</th><th>within-therapist r</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


_INTAKE_COLUMNS = (
    ("files_delivered", "files"),
    ("files_ingested", "ingested"),
    ("files_rejected", "rejected"),
    ("rows_in", "rows"),
    ("administrations_offered", "offered"),
    ("administrations_accepted", "accepted"),
    ("administrations_quarantined", "quarantined"),
    ("administrations_not_administered", "not administered"),
    ("events_recorded", "recorded"),
    ("events_amended", "amended"),
    ("events_retracted", "retracted"),
    ("events_withdrawn", "withdrawals"),
)


def _intake_section(data: ReportData) -> str:
    if not data.intake:
        return ""
    threshold = int(data.intake[0].get("small_cell_threshold") or 11)
    head = "".join(f"<th>{_e(label)}</th>" for _, label in _INTAKE_COLUMNS)
    body = "".join(
        f'<tr><th scope="row">{_e(i["site_id"])}</th>'
        + "".join(
            _cell(i, i.get(c), _num(i.get(c), 0), threshold, (c,)) for c, _ in _INTAKE_COLUMNS
        )
        + f"<td>{_e(_night(i.get('first_logical_date')))}</td>"
        + f"<td>{_e(_night(i.get('last_logical_date')))}</td></tr>"
        for i in data.intake
    )
    return (
        '<section id="intake"><h2>Deliveries per site</h2>'
        "<p>From mart_site_intake: files each site delivered (each counted once, by content), "
        "the rows and administrations of its exports (offered = accepted + quarantined + not "
        "administered) and the events they produced. Withdrawals count clients: from 1 to "
        f"{threshold - 1} they are suppressed (shown as {SUPPRESSED}). First and last are "
        "delivery nights, not dates of anyone's session.</p>"
        f"<table><thead><tr><th>site</th>{head}<th>first</th><th>last</th></tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _night(value: Any) -> str:
    return "n/a" if value is None else str(value)[:10]


def _quality_section(data: ReportData, manifest: dict) -> str:
    threshold = next((int(q["small_cell_threshold"]) for q in data.quality), 11)
    columns = (
        "n_alliance_administrations",
        "n_outcome_administrations",
        "n_prorated_administrations",
        "n_unscorable_administrations",
        "n_quarantined",
    )
    rows = "".join(
        f'<tr><th scope="row">{_e(q["site_id"])}</th>'
        + "".join(_cell(q, q.get(c), _num(q.get(c), 0), threshold, (c,)) for c in columns)
        + "</tr>"
        for q in data.quality
    )
    gx = manifest.get("gx") or {}
    status = gx.get("by_status") or {}
    gate = (
        f"<p>Data-quality gate (Great Expectations {_e(gx.get('gx_version', ''))}): "
        + ", ".join(f"{_e(k)} {_e(v)}" for k, v in status.items())
        + ".</p>"
        if status
        else '<p class="muted">Gate summary not recorded in the manifest.</p>'
    )
    dbt = manifest.get("dbt") or {}
    counts = dbt.get("counts") or {}
    dbt_line = (
        f"<p>dbt {_e(dbt.get('dbt_version', ''))}: "
        + ", ".join(f"{_e(k)} {_e(v)}" for k, v in counts.items())
        + ".</p>"
        if counts
        else ""
    )
    return (
        '<section id="quality"><h2>Data quality</h2>'
        "<p>Administrations in the current state per site: prorated (blanks within the "
        "instrument's rule) and unscorable (too many blanks). Quarantined rows are not yet "
        "exposed to the marts (n/a); the restricted quarantine store holds them.</p>"
        "<table><thead><tr><th>site</th><th>alliance</th><th>outcome</th><th>prorated</th>"
        "<th>unscorable</th><th>quarantined</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{gate}{dbt_line}</section>"
    )


def _methods_section(params: dict) -> str:
    items = "".join(
        f"<tr><td><code>{_e(k)}</code></td><td>{_e(_param_text(v))}</td></tr>"
        for k, v in sorted(params.items())
    )
    return (
        '<section id="methods"><h2>Methods and parameters</h2>'
        "<p>Early alliance by the rule below; improvement = first minus last score, signed so "
        "that positive is better. Per site: Pearson r, Fisher z with SE 1/\u221a(n\u22123); "
        "pooled by inverse-variance fixed effect and DerSimonian-Laird random effects (tau\u00b2 "
        "truncated at 0), prediction interval z \u00b1 t<sub>k\u22122</sub>\u221a(tau\u00b2 + "
        "SE\u00b2). Jacobson & Truax (1991) reliable change with registry reliabilities; NHS "
        "Talking Therapies recovery and reliable change on PHQ-9 with GAD-7; sudden gains after "
        "Tang & DeRubeis (1999). Parameters as built (dbt vars):</p>"
        f"<table><tbody>{items}</tbody></table></section>"
    )


def _param_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0])))
    return "null" if value is None else str(value)


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1120px; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 34px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.lead { color: #444; margin: 0 0 10px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13px;
  color: #444; }
.facts dt { font-weight: 600; }
.facts dd { margin: 0; }
.headline { font-size: 20px; }
.muted { color: #666; }
.anchor { color: #7a4d00; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f6; }
td.hidden { color: #8a8a8a; font-style: italic; }
.grid { display: flex; flex-wrap: wrap; gap: 14px; }
figure { margin: 0; }
figcaption { font-size: 12px; color: #555; }
.legend-item { margin-right: 14px; font-size: 13px; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 4px; }
svg.chart { font-size: 12px; max-width: 100%; height: auto; }
svg .axis { stroke: #333; stroke-width: 1; }
svg .tick { fill: #333; font-size: 11px; }
svg .axis-label { fill: #333; font-size: 12px; }
svg .col-head, svg .strong { font-weight: 600; fill: #333; }
svg .muted { fill: #777; }
svg .ci { stroke: #222; stroke-width: 1.5; }
svg .site-mark { fill: #0072B2; }
svg .pi { stroke: #444; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .pooled-fixed { fill: #999; }
svg .pooled-random_dl { fill: #0072B2; }
svg .anchor-mark { fill: #E69F00; }
svg .anchor-band { fill: #E69F00; opacity: .15; }
svg .anchor-line { stroke: #E69F00; stroke-width: 1.5; stroke-dasharray: 4 3; }
svg .zero-line { stroke: #999; stroke-width: 1; }
svg .separator { stroke: #ccc; }
svg .grid { stroke: #e4e4e4; stroke-width: 1; }
svg .band { opacity: .16; stroke: none; }
svg .series { fill: none; stroke-width: 2; }
svg .bar-k1 { fill: #56B4E9; }
svg .bar-k2 { fill: #0072B2; }
svg .rc-band { fill: #999; opacity: .18; }
svg .diagonal { stroke: #666; stroke-width: 1; }
svg .cutoff { stroke: #D55E00; stroke-dasharray: 5 3; stroke-width: 1.2; }
svg .point { opacity: .75; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body>
{body}
<footer class="muted"><p>Self-contained: no scripts, fonts or images are loaded from anywhere.
Generated by warehouse/report.py from the release's marts.</p></footer>
</body>
</html>
"""
