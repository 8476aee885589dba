"""Rewrite a delivered export without one client's rows, in every format the intake engine reads.

Rows are matched the way intake matches them: a cell is the client when its keyed pseudonym
(which strips the code, as intake does) equals the erased client's, so " C1 " and "C1" are the
same client here exactly as in the event log. Each format is parsed with its reader's settings
(the site's column map, Qualtrics' ImportId row, the long table's encoding and delimiter, SPSS
variable names ignoring case, the zip's member glob) and written back in the same format.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import pyreadstat

from ingestion.consortium import SiteConfig
from ingestion.intake.redcap_dictionary import is_dictionary
from ingestion.intake.sources import QUALTRICS_HEADER_ROWS as HEADER_ROWS
from ingestion.intake.sources import _import_id
from ingestion.intake.spss_rows import READ_ERRORS, _render, _user_missing

MEASURES = ("nominal", "ordinal", "scale")
# Does this cell (as the reader renders it) hold the erased client?
Match = Callable[[str], bool]


class Unreadable(ValueError):
    """The file cannot be parsed as its format: it is reported, never silently skipped."""


def redact(raw: bytes, fmt: str, site: SiteConfig, column: str, match: Match) -> tuple[bytes, int]:
    """(the file's bytes without the client's rows, rows removed); bytes unchanged if none."""
    if fmt == "zip":
        return _zip(raw, site, match)
    if fmt == "qualtrics_csv":
        assert site.qualtrics is not None
        return _delimited(
            raw, site.qualtrics.encoding, ",", HEADER_ROWS, _qualtrics_at(site), match
        )
    if fmt == "long_csv":
        assert site.long_csv is not None
        opts = site.long_csv
        return _delimited(raw, opts.encoding, opts.delimiter, 1, _named_at(column), match)
    if fmt == "spss_sav":
        return _sav(raw, site, column, match)
    return _delimited(raw, "utf-8", ",", 1, _named_at(column), match)


def _named_at(column: str) -> Callable[[list[list[str]]], int | None]:
    def find(header_rows: list[list[str]]) -> int | None:
        names = [h.strip() for h in header_rows[0]]
        return names.index(column) if column in names else None

    return find


def _qualtrics_at(site: SiteConfig) -> Callable[[list[list[str]]], int | None]:
    """The client column as the Qualtrics reader finds it: by ImportId first, else by name."""
    assert site.qualtrics is not None
    target = site.columns["client_code"]

    def find(header_rows: list[list[str]]) -> int | None:
        names, _, ids = header_rows
        for index, cell in enumerate(ids):
            if site.qualtrics.import_ids.get(_import_id(cell) or "") == target:
                return index
        names = [n.strip() for n in names]
        return names.index(target) if target in names else None

    return find


def _delimited(
    raw: bytes,
    encoding: str,
    delimiter: str,
    header_rows: int,
    find: Callable[[list[list[str]]], int | None],
    match: Match,
) -> tuple[bytes, int]:
    bom = encoding in ("utf-8", "utf-8-sig") and raw.startswith(b"\xef\xbb\xbf")
    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    try:
        text = raw.decode(codec)
        records = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise Unreadable(f"not a readable {encoding} file: {exc}") from exc
    if len(records) < header_rows:
        return raw, 0
    at = find(records[:header_rows])
    if at is None:
        return raw, 0
    body = records[header_rows:]
    kept = [r for r in body if not (len(r) > at and match(r[at]))]
    if len(kept) == len(body):
        return raw, 0
    out = io.StringIO()
    newline = "\r\n" if "\r\n" in text else "\n"
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerows(
        [*records[:header_rows], *kept]
    )
    # A BOM is written back only when the delivered file had one.
    data = out.getvalue().encode("utf-8-sig" if bom else codec.removesuffix("-sig"))
    return data, len(body) - len(kept)


def _sav(raw: bytes, site: SiteConfig, column: str, match: Match) -> tuple[bytes, int]:
    """Cases dropped with pyreadstat; variable and value labels, formats, measures, widths, notes
    and user-missing declarations kept. Written uncompressed: pyreadstat does not report the
    source's compression."""
    try:
        data, meta = pyreadstat.read_sav(io.BytesIO(raw), user_missing=True)
    except READ_ERRORS as exc:
        raise Unreadable(f"not a readable SPSS .sav file: {exc}") from exc
    name = {n.lower(): n for n in meta.column_names}.get(column.lower())
    if name is None:
        return raw, 0
    ranges = meta.missing_ranges.get(name, [])
    hit = [
        not _user_missing(v, ranges) and match(_render(v, site.date_format, {}))
        for v in data[name].tolist()
    ]
    removed = sum(hit)
    if not removed:
        return raw, 0
    kept = data.loc[[not h for h in hit]].reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="bordin-redact-") as folder:
        target = Path(folder) / "redacted.sav"
        pyreadstat.write_sav(
            kept,
            str(target),
            file_label=meta.file_label or "",
            column_labels=dict(zip(meta.column_names, meta.column_labels, strict=True)),
            note=list(meta.notes) or None,
            variable_value_labels=meta.variable_value_labels,
            missing_ranges=meta.missing_ranges,
            variable_display_width=meta.variable_display_width,
            variable_measure={k: v for k, v in meta.variable_measure.items() if v in MEASURES},
            variable_format=meta.original_variable_types,
        )
        return target.read_bytes(), removed


def _zip(raw: bytes, site: SiteConfig, match: Match) -> tuple[bytes, int]:
    """Every data member (the reader's member glob) redacted; other members copied as they are."""
    options = site.zip
    assert options is not None
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise Unreadable(f"not a readable zip archive: {exc}") from exc
    removed = 0
    members: list[tuple[zipfile.ZipInfo, bytes]] = []
    with archive:
        if sum(i.file_size for i in archive.infolist()) > options.max_total_bytes:
            raise Unreadable(f"expands beyond {options.max_total_bytes} bytes (zip bomb guard)")
        for info in archive.infolist():
            content = archive.read(info)
            name = PurePosixPath(info.filename).name
            data_member = (
                not info.is_dir()
                and fnmatch.fnmatch(name, options.member_glob)
                and not is_dictionary(name, site)
            )
            if data_member:
                column = site.columns["client_code"]
                content, n = redact(content, options.format, site, column, match)
                removed += n
            members.append((info, content))
    if not removed:
        return raw, 0
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as rewritten:
        for info, content in members:
            rewritten.writestr(info, content, compress_type=info.compress_type)
    return out.getvalue(), removed
