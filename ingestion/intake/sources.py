"""Every export format as one canonical relation: one row per (record, questionnaire offered).

A source checks what it must before any row is read (encoding, header, required columns, the
REDCap data dictionary), then hands the engine a SQL relation DuckDB streams: the CSV formats
straight from the file (DuckDB's reader, every cell text), SPSS .sav from row chunks rendered
to text (`spss_rows`), a zip from its one data member copied out of the archive in blocks.
Nothing holds a whole file in memory.

Canonical columns (the only ones the engine reads; unmapped columns, the site's identifier
columns and free text are never selected):
  form          index of the questionnaire in the site's `forms` (NULL: a long table's measure
                the site did not map); a wide record offers every form, a long line its own
  ragged        the record has a different number of fields than the header
  label         a long table's measure cell (NULL for wide formats)
  client_raw, therapist_raw, date_raw, event_raw, ending_raw, withdraw_raw   the role cells
  parent_raw    the carry-down parent column's cell (NULL: no `carry_down` from a parent row)
  t1..tN        the form's item cells, in item order (NULL past the form's length)
  form_status   REDCap's `<form>_complete` cell (NULL: the form has no status column)
  unfinished, finished_raw, progress_raw    a Qualtrics response's completion
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import re
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import duckdb

from ingestion.consortium import QUALTRICS_IDENTIFYING, SiteConfig
from ingestion.intake import text_files as tf
from ingestion.intake.carry_down import carried
from ingestion.intake.redcap_dictionary import (
    check_export,
    find_dictionary,
    is_dictionary,
    parse_dictionary,
)
from ingestion.intake.spss_rows import load_spss
from ingestion.quarantine import Issue
from ingestion.registry import Registry

ROLES = ("client_code", "therapist_code", "session_date", "event")
WIDE_RAGGED = "row has a different number of fields than the header (truncated or broken line)"
QUALTRICS_HEADER_ROWS = 3
IDENTIFYING = {c.lower() for c in QUALTRICS_IDENTIFYING}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Rejected:
    """The whole file is refused: one file-level record."""

    issue: Issue
    rows_in: int = 0


@dataclass(frozen=True)
class Source:
    cells: str  # SQL relation with the canonical columns, in file order
    per_record: int  # canonical rows per record (1: long table; the site's forms: wide)
    first_line: int  # record number of the first data record
    n_items: int
    ragged_message: str
    text: Path | None = None  # the CSV DuckDB scans (for its gaps); None: rows numbered 1..n
    blank_lines_count: bool = True
    line_shift: int = 0  # physical lines the header records take beyond one each


def n_items(site: SiteConfig, registry: Registry) -> int:
    return max(registry.get(f.instrument).items for f in site.forms)


def required_columns(site: SiteConfig, registry: Registry) -> list[str]:
    """Canonical columns a wide export must hold: the role columns, every form's items, and
    the withdrawal, ending and carry-down parent columns when configured."""
    required = [site.columns[c] for c in ROLES]
    for form in site.forms:
        required += form.item_columns(registry.get(form.instrument).items)
    return list(dict.fromkeys(required + optional_columns(site)))


def optional_columns(site: SiteConfig) -> list[str]:
    """Configured columns beyond roles and items: withdrawal, ending, carry-down parent."""
    names = [
        site.withdrawals.column if site.withdrawals else None,
        site.ending.column if site.ending else None,
        site.carry_down.parent_column if site.carry_down else None,
    ]
    return [n for n in names if n]


def open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    site: SiteConfig,
    registry: Registry,
    scratch: Path,
    fmt: str | None = None,
    dictionary_path: Path | None = None,
) -> Source | Rejected:
    """The export as the canonical relation, with the site's carry-down applied."""
    source = _open(con, path, site, registry, scratch, fmt, dictionary_path)
    if isinstance(source, Rejected) or site.carry_down is None:
        return source
    return dataclasses.replace(source, cells=carried(con, source.cells, site))


def _open(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    site: SiteConfig,
    registry: Registry,
    scratch: Path,
    fmt: str | None = None,
    dictionary_path: Path | None = None,
) -> Source | Rejected:
    fmt = fmt or site.format
    if fmt == "zip":
        return _zip(con, path, site, registry, scratch)
    if fmt == "spss_sav":
        return _spss(con, path, site, registry)
    if fmt == "redcap_csv":
        found = (
            dictionary_path if dictionary_path is not None else find_dictionary(path.parent, site)
        )
        return _redcap(con, path, site, registry, scratch, found)
    if fmt == "qualtrics_csv":
        return _qualtrics(con, path, site, registry, scratch)
    if fmt == "long_csv":
        return _long(con, path, site, registry, scratch)
    raise ValueError(f"no source for format {fmt!r}")


def _text(path: Path, encoding: str, hint: str, scratch: Path, label: str = "") -> Path | Rejected:
    if tf.is_blank(path):
        return Rejected(Issue.of("file.empty"))
    text = tf.encoding_issue(path, encoding, hint, scratch / "transcoded.csv", label)
    return Rejected(text) if isinstance(text, Issue) else text


def _scan(path: Path, delimiter: str, width: int, skip: int) -> str:
    return tf.body_relation(path, delimiter, width, skip, parallel=True)


def serial(source: Source) -> Source:
    """The same source read by one thread: DuckDB's parallel scanner cannot pad a short line
    in a file whose quoted values hold line breaks, and says so (`tf.SERIAL_HINT`)."""
    return dataclasses.replace(source, cells=source.cells.replace(tf.PARALLEL, tf.SERIAL))


def _missing(detail: str, rows_in: int, column: str | None = None) -> Rejected:
    return Rejected(Issue.of("file.missing_columns", column=column, detail=detail), rows_in)


def _duplicates(header: list[str]) -> Issue | None:
    if len(set(header)) == len(header):
        return None
    dupes = sorted({h for h in header if header.count(h) > 1})
    return Issue.of("file.duplicate_columns", dupes=dupes)


# --- wide formats -------------------------------------------------------------------------


def wide_cells(
    base: str,
    at: dict[str, str],
    ragged: str,
    site: SiteConfig,
    registry: Registry,
    *,
    status: dict[int, str] | None = None,
    unfinished: str = "false",
    finished: str = "NULL",
    progress: str = "NULL",
) -> str:
    """The canonical relation of a wide source: each record once per form (in form order).

    `at`: canonical column name -> column of `base`; `status`: form index -> status column.
    """
    status = status or {}
    n = n_items(site, registry)
    used = sorted(
        {
            c
            for c in {at[c] for c in required_columns(site, registry)} | set(status.values())
            if re.fullmatch(r"c\d+", c)
        },
        key=lambda c: (len(c), c),
    )
    items = []
    for k in range(1, n + 1):
        whens = []
        for j, form in enumerate(site.forms):
            columns = form.item_columns(registry.get(form.instrument).items)
            if k <= len(columns):
                whens.append(f"WHEN {j} THEN {at[columns[k - 1]]}")
        items.append(f"CASE form {' '.join(whens)} END AS t{k}" if whens else f"NULL AS t{k}")
    statuses = " ".join(f"WHEN {j} THEN coalesce({c}, '')" for j, c in status.items())
    form_status = f"CASE form {statuses} END" if statuses else "CAST(NULL AS VARCHAR)"
    return f"""
        SELECT form, ragged, CAST(NULL AS VARCHAR) AS label, {_role_cells(site, at)},
               {", ".join(items)}, {form_status} AS form_status,
               unfinished, finished_raw, progress_raw
        FROM (
            SELECT unnest(range({len(site.forms)})) AS form, {ragged} AS ragged,
                   {unfinished} AS unfinished, {finished} AS finished_raw,
                   {progress} AS progress_raw, {", ".join(used)}
            FROM {base}
        )
    """


def _role_cells(site: SiteConfig, at: dict[str, str]) -> str:
    """SQL of the role cells (client, therapist, date, event, ending, withdrawal)."""
    role = {r: at[site.columns[r]] for r in ROLES}
    ending = at.get(site.ending.column) if site.ending else None
    column = site.withdrawals.column if site.withdrawals else None
    withdraw = at.get(column) if column else None
    parent_column = site.carry_down.parent_column if site.carry_down else None
    parent = at.get(parent_column) if parent_column else None
    null = "CAST(NULL AS VARCHAR)"
    return (
        f"{role['client_code']} AS client_raw, {role['therapist_code']} AS therapist_raw, "
        f"{role['session_date']} AS date_raw, {role['event']} AS event_raw, "
        f"{ending or null} AS ending_raw, {withdraw or null} AS withdraw_raw, "
        f"{parent or null} AS parent_raw"
    )


def _redcap(con, path, site, registry, scratch, dictionary_path) -> Source | Rejected:
    if dictionary_path is not None:
        dictionary = parse_dictionary(dictionary_path.read_bytes(), dictionary_path.name)
        if isinstance(dictionary, Issue):
            return Rejected(dictionary)
        mismatch = check_export(dictionary, site, registry)
        if mismatch is not None:
            return Rejected(mismatch)
    text = _text(path, "utf-8", "export from REDCap as UTF-8 CSV", scratch, "UTF-8")
    if isinstance(text, Rejected):
        return text
    header = tf.read_header(text, ",", 1)
    if isinstance(header, Issue):
        return Rejected(header)
    names = [h.strip() for h in header.records[0]]
    body = _scan(text, ",", len(names), len(header.records))
    status_columns = [f.status_column for f in site.forms if f.status_column]
    required = required_columns(site, registry) + status_columns
    missing = [c for c in dict.fromkeys(required) if c not in names]
    if missing:
        return _missing(
            f"required columns not in the header: {', '.join(missing)} "
            "(renamed in the export, or the site's column map is out of date)",
            tf.count_records(con, body),
            ", ".join(missing),
        )
    if (dupes := _duplicates(names)) is not None:
        return Rejected(dupes)  # as before: a repeated column gives no row count
    at = {c: f"c{names.index(c)}" for c in required}
    status = {j: at[f.status_column] for j, f in enumerate(site.forms) if f.status_column}
    cells = wide_cells(body, at, tf.ragged_sql(len(names)), site, registry, status=status)
    return Source(
        cells,
        len(site.forms),
        2,
        n_items(site, registry),
        WIDE_RAGGED,
        text=text,
        blank_lines_count=False,
        line_shift=header.lines - len(header.records),
    )


def _import_id(cell: str) -> str | None:
    try:
        doc = json.loads(cell)
    except ValueError:
        return None
    value = doc.get("ImportId") if isinstance(doc, dict) else None
    return str(value) if value else None


def _qualtrics(con, path, site, registry, scratch) -> Source | Rejected:
    options = site.qualtrics
    assert options is not None
    text = _text(path, options.encoding, "export from Qualtrics as CSV (UTF-8)", scratch)
    if isinstance(text, Rejected):
        return text
    header = tf.read_header(text, ",", QUALTRICS_HEADER_ROWS)
    if isinstance(header, Issue):
        return Rejected(header)
    if len(header.records) < QUALTRICS_HEADER_ROWS:
        return Rejected(Issue.of("file.qualtrics_header"))
    names, _, id_row = header.records
    names = [n.strip() for n in names]
    ids = [_import_id(c) for c in id_row] + [None] * (len(names) - len(id_row))
    if not any(ids):
        return Rejected(Issue.of("file.qualtrics_import_ids"))
    body = _scan(text, ",", len(names), len(header.records))
    dropped = IDENTIFYING | {c.lower() for c in (*options.drop_columns, *site.identifier_columns)}
    wanted: dict[str, int] = {}
    finished_at = progress_at = None
    for index, (name, import_id) in enumerate(zip(names, ids, strict=False)):
        if name.lower() in dropped or (import_id or "").lower() in dropped:
            continue
        if import_id in options.import_ids:
            wanted[options.import_ids[import_id]] = index
        if name == "Finished" or (import_id or "").lower() == "finished":
            finished_at = index
        if name == "Progress" or (import_id or "").lower() == "progress":
            progress_at = index
    for role in ROLES:
        column = site.columns[role]
        if column not in wanted and column in names:
            index = names.index(column)
            if names[index].lower() not in dropped and (ids[index] or "").lower() not in dropped:
                wanted[column] = index
    required = [site.columns[c] for c in ROLES]
    for form in site.forms:
        required += form.item_columns(registry.get(form.instrument).items)
    if site.ending is not None:  # configured, so required: a missing one would blank dropout
        required.append(site.ending.column)
    for optional in optional_columns(site):
        if optional not in wanted and optional in names:
            wanted[optional] = names.index(optional)
    if site.carry_down is not None and site.carry_down.parent_column:
        required.append(site.carry_down.parent_column)
    by_target = {v: k for k, v in options.import_ids.items()}
    missing = [c for c in required if c not in wanted]
    if finished_at is None:
        missing.append("Finished")
    if progress_at is None and options.final_when != "finished":
        missing.append(f"Progress (final_when: {options.final_when})")
    if missing:
        named = [f"{c} (ImportId {by_target[c]})" if c in by_target else c for c in missing]
        return _missing(
            f"required columns not in the export: {', '.join(named)} (question deleted or "
            "re-created in the survey, or the site's ImportId map is out of date)",
            tf.count_records(con, body),
        )
    at = {c: f"c{i}" for c, i in wanted.items()}
    for optional in required_columns(site, registry):
        at.setdefault(optional, "CAST(NULL AS VARCHAR)")
    finished = f"c{finished_at}"
    counts = f"lower(trim(coalesce({finished}, ''))) IN ('1', 'true')"
    progress = f"c{progress_at}" if progress_at is not None else None
    if options.final_when != "finished" and progress is not None:
        reached = (
            f"coalesce(TRY_CAST(trim({progress}) AS DOUBLE) >= {options.min_progress!r}, false)"
        )
        joint = "AND" if options.final_when == "finished_and_progress" else "OR"
        counts = f"({counts}) {joint} {reached}"
    cells = wide_cells(
        body,
        at,
        tf.ragged_sql(len(names)),
        site,
        registry,
        unfinished=f"NOT ({counts})",
        finished=finished,
        progress=f"trim({progress})" if progress else "'?'",
    )
    return Source(
        cells,
        len(site.forms),
        QUALTRICS_HEADER_ROWS + 1,
        n_items(site, registry),
        WIDE_RAGGED,
        text=text,
        line_shift=header.lines - len(header.records),
    )


def _spss(con, path, site, registry) -> Source | Rejected:
    loaded = load_spss(con, path, site, required_columns(site, registry))
    if isinstance(loaded, Rejected):
        return loaded
    at = {c: f"c{i}" for i, c in enumerate(loaded)}
    cells = wide_cells("sav_rows", at, "false", site, registry)
    return Source(cells, len(site.forms), 1, n_items(site, registry), WIDE_RAGGED)


# --- long tables --------------------------------------------------------------------------


def long_columns(site: SiteConfig, registry: Registry) -> tuple[dict[int, list[str]], list[str]]:
    """(form index -> its item columns in the long file, every column the map needs).

    With `long_csv.item_column_template` every measure's items share those columns; without
    it each form's own `item_column_template` names them (an SRS in srs_1.., an ORS in ors_1..).
    """
    options = site.long_csv
    assert options is not None
    mapped = set(options.measures.values())
    sources: dict[int, list[str]] = {}
    for j, form in enumerate(site.forms):
        if form.form_id not in mapped:
            continue
        items = registry.get(form.instrument).items
        template = options.item_column_template or form.item_column_template
        sources[j] = [template.format(n=n) for n in range(1, items + 1)]
    columns = [c for cols in sources.values() for c in cols]
    needed = [site.columns[r] for r in ROLES] + [options.measure_column, *columns]
    return sources, list(dict.fromkeys(needed))


def _long(con, path, site, registry, scratch) -> Source | Rejected:
    options = site.long_csv
    assert options is not None
    text = _text(path, options.encoding, f"the site is configured for {options.encoding}", scratch)
    if isinstance(text, Rejected):
        return text
    header = tf.read_header(text, options.delimiter, 1)
    if isinstance(header, Issue):
        return Rejected(header)
    names = [h.strip() for h in header.records[0]]
    body = _scan(text, options.delimiter, len(names), len(header.records))
    item_sources, required = long_columns(site, registry)
    optional = optional_columns(site)
    missing = [c for c in dict.fromkeys(required + optional) if c not in names]
    if missing:
        return _missing(
            f"required columns not in the header: {', '.join(missing)} (renamed in the "
            f"export, wrong delimiter {options.delimiter!r}, or the column map is out of date)",
            tf.count_records(con, body),
        )
    if (dupes := _duplicates(names)) is not None:
        return Rejected(dupes, tf.count_records(con, body))
    at = {c: f"c{names.index(c)}" for c in required + optional}
    forms = {f.form_id: j for j, f in enumerate(site.forms)}
    ragged = tf.ragged_sql(len(names))
    spaces = tf.quote(" \t\n\r\x0b\x0c")
    label = f"trim(coalesce({at[options.measure_column]}, ''), {spaces})"
    measure = " ".join(f"WHEN {tf.quote(k)} THEN {forms[v]}" for k, v in options.measures.items())
    n = n_items(site, registry)
    item_cells = list(dict.fromkeys(c for cols in item_sources.values() for c in cols))
    raw = ", ".join(f"{at[c]} AS i{i}" for i, c in enumerate(item_cells)) or "NULL AS i0"
    raw_names = ", ".join(f"i{i}" for i in range(max(len(item_cells), 1)))
    items = []
    for k in range(1, n + 1):
        whens = []
        for j, cols in item_sources.items():
            if k <= len(cols):
                value = f"coalesce(i{item_cells.index(cols[k - 1])}, '')"
                if options.decimal == ",":
                    value = f"replace({value}, ',', '.')"
                whens.append(f"WHEN {j} THEN {value}")
        items.append(f"CASE form {' '.join(whens)} END AS t{k}" if whens else f"NULL AS t{k}")
    cells = f"""
        SELECT * EXCLUDE ({raw_names}), {", ".join(items)}
        FROM (
            SELECT CASE WHEN ragged THEN NULL ELSE CASE label {measure} END END AS form, *
            FROM (
                SELECT {ragged} AS ragged, {label} AS label, {_role_cells(site, at)}, {raw},
                       CAST(NULL AS VARCHAR) AS form_status,
                       false AS unfinished, CAST(NULL AS VARCHAR) AS finished_raw,
                       CAST(NULL AS VARCHAR) AS progress_raw
                FROM {body}
            )
        )
    """
    message = (
        "row has a different number of fields than the header (truncated or broken line, or "
        f"a value holding the delimiter {options.delimiter!r} unquoted)"
    )
    return Source(cells, 1, 2, n, message, text=text, line_shift=header.lines - 1)


# --- zip archives -------------------------------------------------------------------------


def _archive(rule: str, detail: str) -> Rejected:
    return Rejected(Issue.of(f"archive.{rule}", detail=detail))


def unsafe_member(name: str) -> str | None:
    """Why a member name could escape the folder it would be extracted into, or None."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":" and name[0].isalpha()):
        return "is an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return "climbs out of the archive folder (..)"
    return None


def _zip(con, path, site, registry, scratch) -> Source | Rejected:
    """The one data member, copied out in blocks under a byte cap, read as its format."""
    options = site.zip
    assert options is not None
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        return _archive("unreadable", f"not a readable zip archive: {exc}")
    with archive:
        members = archive.infolist()
        if len(members) > options.max_members:
            return _archive(
                "too_many_members",
                f"{len(members)} members, more than the limit of {options.max_members}",
            )
        for info in members:
            why = unsafe_member(info.filename)
            if why:
                return _archive("unsafe_path", f"member {info.filename!r} {why}; nothing read")
            if stat.S_ISLNK(info.external_attr >> 16):
                return _archive("symlink", f"member {info.filename!r} is a symbolic link")
        declared = sum(i.file_size for i in members)
        if declared > options.max_total_bytes:
            return _archive(
                "too_large",
                f"uncompressed size {declared} bytes exceeds the limit of "
                f"{options.max_total_bytes} (zip bomb guard)",
            )
        files = [i for i in members if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        dictionaries = [i for i in files if is_dictionary(PurePosixPath(i.filename).name, site)]
        data = [
            i
            for i in files
            if i not in dictionaries
            and fnmatch.fnmatch(PurePosixPath(i.filename).name, options.member_glob)
        ]
        if len(data) != 1:
            found = ", ".join(i.filename for i in data) or "none"
            return _archive(
                "data_members",
                f"a zip must hold exactly one export matching {options.member_glob!r}; "
                f"found {len(data)} ({found})",
            )
        (member,) = data
        if member.flag_bits & 0x1:
            return _archive("encrypted", f"member {member.filename!r} is encrypted")
        # A fixed name in the private scratch folder, never the member's own.
        target = scratch / f"member{PurePosixPath(member.filename).suffix[:8]}"
        refused = _copy_capped(archive, member, target, options.max_total_bytes)
        if refused is not None:
            return refused
        dictionary = None
        if dictionaries and options.format == "redcap_csv":
            newest = max(dictionaries, key=lambda i: PurePosixPath(i.filename).name)
            dictionary = scratch / "dictionary.csv"
            refused = _copy_capped(archive, newest, dictionary, options.max_total_bytes)
            if refused is not None:
                return refused
    if dictionary is None and options.format == "redcap_csv":
        dictionary = find_dictionary(path.parent, site)
    return _open(con, target, site, registry, scratch, options.format, dictionary)


def _copy_capped(
    archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, limit: int
) -> Rejected | None:
    """Inflate a member block by block: memory is one block, disk is capped at `limit`."""
    written = 0
    try:
        with archive.open(member) as source, target.open("wb") as out:
            while block := source.read(CHUNK):
                written += len(block)
                if written > limit:
                    break
                out.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
        return _archive("unreadable", f"member {member.filename!r} cannot be read: {exc}")
    if written > limit:
        target.unlink(missing_ok=True)
        return _archive(
            "too_large",
            f"member {member.filename!r} expands beyond {limit} bytes (zip bomb guard)",
        )
    return None
