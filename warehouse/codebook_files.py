"""codebook.csv and codebook.html: the release codebook for people (warehouse/codebook.py).

The CSV is one row per table (column left empty) and one per column, for filtering in a
spreadsheet or joining in code; the HTML is one self-contained page (no scripts, fonts or
links outside it) that also lists the instrument registry with its citations. Both are
deterministic: the same codebook gives the same bytes, so a rebuilt release reproduces them.
"""

from __future__ import annotations

import html
from pathlib import Path

from warehouse.codebook import Citation, Codebook, ColumnDoc
from warehouse.spreadsheet_csv import write_csv

CSV_NAME = "codebook.csv"
HTML_NAME = "codebook.html"
CSV_HEADER = ("table", "column", "type", "description", "allowed_values", "units", "provenance")
# Separates list items inside one CSV cell (values are identifiers and never contain it).
LIST_SEPARATOR = " | "

EXPORT_CODING = (
    "In the SPSS and Stata exports (bordin export), a column with allowed values is a numeric "
    "variable coded 1, 2, ... in the order listed, with the value as its value label; a "
    "boolean is 0 = false, 1 = true; null is system missing (an empty string for text)."
)


def _citation(c: Citation) -> str:
    return f"{c.instrument} ({c.topic}): {c.text}"


def write_codebook_csv(codebook: Codebook, path: Path) -> Path:
    rows: list[tuple[str, ...]] = []
    for table in codebook.tables:
        rows.append((table.name, "", "", table.description, "", "", ""))
        for c in table.columns:
            rows.append(
                (
                    table.name,
                    c.name,
                    c.type,
                    c.description,
                    LIST_SEPARATOR.join(c.allowed_values),
                    c.units,
                    LIST_SEPARATOR.join(_citation(p) for p in c.provenance),
                )
            )
    return write_csv(path, CSV_HEADER, rows)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _values_cell(c: ColumnDoc) -> str:
    parts = []
    if c.allowed_values:
        parts.append(", ".join(f"<code>{_e(v)}</code>" for v in c.allowed_values))
    if c.units:
        parts.append(_e(c.units))
    return "<br>".join(parts)


def _provenance_cell(c: ColumnDoc) -> str:
    if not c.provenance:
        return ""
    items = "".join(
        f"<li><b>{_e(p.instrument)}</b> <span class=muted>{_e(p.topic)}</span>: {_e(p.text)}</li>"
        for p in c.provenance
    )
    return f"<details><summary>{len(c.provenance)} citation(s)</summary><ul>{items}</ul></details>"


def _table_section(codebook: Codebook) -> list[str]:
    out = []
    for table in codebook.tables:
        rows = "\n".join(
            f"<tr id='{_e(table.name)}.{_e(c.name)}'><td><code>{_e(c.name)}</code></td>"
            f"<td>{_e(c.type)}</td><td>{_e(c.description)}</td><td>{_values_cell(c)}</td>"
            f"<td>{_provenance_cell(c)}</td></tr>"
            for c in table.columns
        )
        out.append(
            f"<section id='{_e(table.name)}'><h2>{_e(table.name)}</h2>"
            f"<p>{_e(table.description)}</p>\n<table><thead><tr><th>column</th><th>type</th>"
            "<th>description</th><th>allowed values / units</th><th>provenance</th></tr>"
            f"</thead><tbody>\n{rows}\n</tbody></table></section>"
        )
    return out


def _instrument_section(codebook: Codebook) -> str:
    rows = []
    for i in codebook.instruments:
        cites = "".join(
            f"<li><span class=muted>{_e(key)}</span>: {_e(' '.join(str(text).split()))}</li>"
            for key, text in sorted(i.provenance.items())
        )
        rows.append(
            f"<tr id='instrument.{_e(i.instrument_id)}'><td><code>{_e(i.instrument_id)}</code>"
            f"</td><td>{_e(i.name)}</td><td>{_e(i.construct)}</td><td>{i.items}</td>"
            f"<td>{i.item_min:g}-{i.item_max:g}</td><td>{i.total_min:g}-{i.total_max:g}</td>"
            f"<td>{_e(i.direction)}</td><td><ul>{cites}</ul></td></tr>"
        )
    return (
        "<section id='instruments'><h2>Instrument registry</h2><p>The scoring rules the marts "
        "were computed with (the release's <code>rules/instruments/</code>), with each "
        "field's source.</p>\n<table><thead><tr><th>id</th><th>name</th><th>construct</th>"
        "<th>items</th><th>item range</th><th>total range</th><th>direction</th>"
        "<th>provenance</th></tr></thead><tbody>\n" + "\n".join(rows) + "\n</tbody></table>"
        "</section>"
    )


def write_codebook_html(codebook: Codebook, path: Path) -> Path:
    contents = "".join(
        f"<li><a href='#{_e(t.name)}'>{_e(t.name)}</a> ({len(t.columns)} columns)</li>"
        for t in codebook.tables
    )
    body = "\n".join(
        [
            "<h1>Bordin release codebook</h1>",
            "<p class=lead>Every table and column of this release: its type, description, "
            "allowed values or units and, for columns computed from a questionnaire, the "
            "instrument registry's sources. The same text is in <code>marts.duckdb</code> "
            "(<code>COMMENT ON</code>), in each Parquet file's field metadata "
            f"(<code>description</code>) and in <code>{CSV_NAME}</code>.</p>",
            f"<p class=muted>{_e(EXPORT_CODING)}</p>",
            f"<ul>{contents}<li><a href='#instruments'>Instrument registry</a></li></ul>",
            *_table_section(codebook),
            _instrument_section(codebook),
        ]
    )
    path.write_text(_PAGE.format(css=_CSS, body=body), encoding="utf-8")
    return path


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial,
  sans-serif; color: #1d1d1f; margin: 0 auto; max-width: 1200px; padding: 24px 28px 60px; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 19px; margin: 34px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.lead { color: #333; }
.muted { color: #666; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; width: 100%; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
thead th { background: #f4f4f6; }
code { font-size: 12px; }
ul { margin: 0; padding-left: 18px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bordin release codebook</title>
<style>{css}</style>
</head>
<body>
{body}
<footer class="muted"><p>Self-contained: no scripts, fonts or images are loaded from anywhere.
Generated by warehouse/codebook_files.py from the dbt project's documentation and the
instrument registry.</p></footer>
</body>
</html>
"""
