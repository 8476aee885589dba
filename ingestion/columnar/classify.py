"""The row engine's acceptance rules as SQL, in one streaming pass over the file.

Each line is one administration. Table `admins` keeps, per line in file order, its status
(`ACCEPTED` candidate, `QUARANTINED`, `NOT_ADMINISTERED`; duplicates later become `CONFLICTED`
or `REPEATED`), its natural key and values, and, for quarantined lines only, the flags and raw
cells the quarantine records need. Table `issues` then holds one row per reason, with the row
engine's rule ids, categories and messages. Limits come from the instrument registry and the
site's configuration; nothing instrument-specific is written here.
"""

from __future__ import annotations

from datetime import date

import duckdb

from ingestion.columnar.load import Source, line_of
from ingestion.consortium import SiteConfig
from ingestion.registry import Registry
from ingestion.validate import CLIENT_CONTROL_MESSAGE

ACCEPTED, QUARANTINED, NOT_ADMINISTERED, CONFLICTED, REPEATED = 0, 1, 2, 3, 4
# What a quarantined line keeps for its records, as one JSON text (NULL on every other line,
# so the wide table stays narrow).
PROBLEM_SHAPE = (
    '{"label": "VARCHAR", "client_raw": "VARCHAR", "date_raw": "VARCHAR", '
    '"event_raw": "VARCHAR", "client_blank": "BOOLEAN", "client_control": "BOOLEAN", '
    '"session_bad": "BOOLEAN", '
    '"date_bad": "BOOLEAN", "date_future": "BOOLEAN", "texts": ["VARCHAR"], '
    '"bad": ["BOOLEAN"], "off": ["BOOLEAN"]}'
)
WHITESPACE = "' \t\n\r\x0b\x0c'"
# The row engine's CONTROL (ingestion/validate.py) as an RE2 pattern.
CONTROL_RE = r"'[\x00-\x1f\x7f-\x9f]'"
# Python's str.strip() for the ASCII whitespace it strips; trim() with a character set is slow,
# so it runs only on the rare cell that starts or ends with one of them.
STRIP_MACRO = f"""
CREATE OR REPLACE MACRO pystrip(x) AS CASE
    WHEN ascii(x) IN (9, 10, 11, 12, 13, 32) OR suffix(x, ' ') OR suffix(x, chr(9))
         OR suffix(x, chr(10)) OR suffix(x, chr(11)) OR suffix(x, chr(12)) OR suffix(x, chr(13))
    THEN trim(x, {WHITESPACE}) ELSE x END
"""


def classify(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    site: SiteConfig,
    registry: Registry,
    logical: date,
) -> None:
    """Table `admins`: one streaming pass over the file."""
    options = site.long_csv
    assert options is not None
    forms = {f.instrument: f for f in site.forms}
    instruments = {i: registry.get(i) for i in sorted(set(options.measures.values()))}
    n = source.n_items
    cell = source.cells
    texts = []
    for k in range(1, n + 1):
        value = f"coalesce({cell[f'item{k}']}, '')"
        if options.decimal == ",":
            value = f"replace({value}, ',', '.')"
        texts.append(f"{value} AS t{k}")
    measure = _case("label", {k: _q(v) for k, v in options.measures.items()}, "NULL")
    skip = ", ".join(_q(s) for s in options.skip_measures) or "NULL"
    n_items = _case("instrument", {i: str(m.items) for i, m in instruments.items()}, "0")
    lo = _case("instrument", {i: repr(m.item_min) for i, m in instruments.items()}, "0")
    hi = _case("instrument", {i: repr(m.item_max) for i, m in instruments.items()}, "0")
    step = _case("instrument", {i: repr(m.item_step) for i, m in instruments.items()}, "1")
    ks = range(1, n + 1)
    # DuckDB's cast skips surrounding whitespace itself; a cell is blank when it is empty or
    # only whitespace (checked only where the cast failed).
    numbers = ", ".join(f"TRY_CAST(t{k} AS DOUBLE) AS num{k}" for k in ks)
    # Per item: given (in use and not blank), a number, and its position on the scale's grid.
    given = ", ".join(
        f"(n_items >= {k} AND t{k} <> '' AND (num{k} IS NOT NULL OR pystrip(t{k}) <> ''))"
        f" AS given{k}"
        for k in ks
    )
    numeric = ", ".join(f"coalesce(NOT isnan(num{k}), false) AS numeric{k}" for k in ks)
    ratios = ", ".join(f"(num{k} - lo) / step AS r{k}" for k in ks)
    # numpy.isclose(r, round(r)) with its default tolerances, as the row engine.
    flags = ", ".join(
        f"given{k} AND NOT numeric{k} AS bad{k}, "
        f"given{k} AND numeric{k} AND (num{k} < lo OR num{k} > hi "
        f"OR abs(r{k} - round(r{k})) > 1e-8 + 1e-5 * abs(round(r{k}))) AS off{k}"
        for k in ks
    )
    values = ", ".join(
        f"CASE WHEN given{k} AND NOT bad{k} AND NOT off{k} THEN num{k} END" for k in ks
    )
    answered = " OR ".join(f"given{k}" for k in ks)
    item_problem = " OR ".join(f"bad{k} OR off{k}" for k in ks)
    future = f"coalesce(parsed_date > DATE '{logical.isoformat()}', false)"
    row_problem = (
        f"(client = '' OR client_control OR session_value IS NULL OR parsed_date IS NULL "
        f"OR {future})"
    )
    con.execute(STRIP_MACRO)
    con.execute(
        f"""
        CREATE TABLE admins AS
        WITH cells AS (
            SELECT {source.ragged} AS ragged,
                   {cell["client_code"]} AS client_raw, {cell["therapist_code"]} AS therapist_raw,
                   {cell["session_date"]} AS date_raw, {cell["event"]} AS event_raw,
                   pystrip(coalesce({cell["measure"]}, '')) AS label,
                   {", ".join(texts)}
            FROM {source.sql}
        ), keyed AS (
            SELECT *, {measure} AS instrument,
                   pystrip(coalesce(client_raw, '')) AS client,
                   regexp_matches(pystrip(coalesce(client_raw, '')), {CONTROL_RE})
                       AS client_control,
                   pystrip(coalesce(therapist_raw, '')) AS therapist,
                   TRY_CAST(trunc(TRY_CAST(nullif(regexp_extract(coalesce(event_raw, ''),
                            {_q(site.session_event_pattern.pattern)}, 1), '') AS DOUBLE))
                            AS INTEGER) AS session_value,
                   TRY_CAST(try_strptime(pystrip(coalesce(date_raw, '')),
                            {_q(site.date_format)}) AS DATE) AS parsed_date
            FROM cells
        ), scaled AS (
            SELECT *, {n_items} AS n_items, {lo} AS lo, {hi} AS hi, {step} AS step, {numbers}
            FROM keyed
        ), given AS (
            SELECT *, {given}, {numeric}, {ratios} FROM scaled
        ), checked AS (
            SELECT *, {flags} FROM given
        ), statused AS (
            SELECT *,
                CASE
                    WHEN ragged THEN {QUARANTINED}
                    WHEN instrument IS NULL AND label IN ({skip}) THEN {NOT_ADMINISTERED}
                    WHEN instrument IS NULL THEN {QUARANTINED}
                    WHEN NOT ({answered}) THEN {NOT_ADMINISTERED}
                    WHEN {row_problem} OR {item_problem} THEN {QUARANTINED}
                    ELSE {ACCEPTED}
                END AS status,
                [{values}] AS item_values
            FROM checked
        )
        SELECT CAST(status AS TINYINT) AS status, ragged, instrument,
               {_case("instrument", {i: _q(forms[i].rater_role) for i in instruments}, "NULL")}
                   AS rater_role,
               {_case("instrument", {f.instrument: str(i) for i, f in enumerate(site.forms)}, "0")}
                   AS form_order,
               -- A code with a control character is keyed without it: its quarantined line
               -- holds the client it most likely names (as the row engine's client_keys).
               CASE WHEN client_control
                    THEN pystrip(regexp_replace(client, {CONTROL_RE}, '', 'g'))
                    ELSE client END AS client,
               nullif(therapist, '') AS therapist,
               session_value AS session_number, parsed_date,
               CASE WHEN status = {ACCEPTED} THEN list_slice(item_values, 1, n_items) END AS items,
               CASE WHEN status = {QUARANTINED} THEN to_json(struct_pack(
                   label, client_raw, date_raw, event_raw,
                   client_blank := client = '', client_control,
                   session_bad := session_value IS NULL,
                   date_bad := parsed_date IS NULL, date_future := {future},
                   texts := [{", ".join(f"pystrip(t{k})" for k in range(1, n + 1))}],
                   bad := [{", ".join(f"bad{k}" for k in range(1, n + 1))}],
                   off := [{", ".join(f"off{k}" for k in range(1, n + 1))}])) END AS problem
        FROM statused
        """
    )


def find_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    """Exact repeats keep their first copy; every version of a conflicting key is held back.

    Keys are grouped by a 64-bit hash first (one cheap aggregate over the file); only lines
    whose hash repeats are compared exactly.
    """
    key = "client, session_number, instrument, rater_role"
    con.execute(
        f"""
        CREATE OR REPLACE TABLE dup AS
        WITH maybe AS (
            SELECT hash({key}) AS h FROM admins WHERE status = {ACCEPTED}
            GROUP BY h HAVING count(*) > 1
        ), rows AS (
            SELECT rowid AS id, {key}, (items, parsed_date, therapist) AS content
            FROM admins
            WHERE status = {ACCEPTED} AND hash({key}) IN (SELECT h FROM maybe)
        )
        SELECT id, instrument, session_number,
               count(DISTINCT content) OVER k > 1 AS conflict,
               row_number() OVER (k ORDER BY id) > 1 AS repeat
        FROM rows
        WINDOW k AS (PARTITION BY {key})
        QUALIFY count(DISTINCT content) OVER k > 1 OR row_number() OVER (k ORDER BY id) > 1
        """
    )
    con.execute(
        f"""
        UPDATE admins SET status = CASE WHEN d.conflict THEN {CONFLICTED} ELSE {REPEATED} END
        FROM dup d WHERE admins.rowid = d.id
        """
    )


def collect_issues(
    con: duckdb.DuckDBPyConnection, site: SiteConfig, registry: Registry, logical: date
) -> None:
    """Table `issues`: one row per reason, ordered within a line as the row engine does."""
    options = site.long_csv
    assert options is not None
    cols = site.columns
    forms = {f.instrument: f for f in site.forms}
    instruments = {i: registry.get(i) for i in sorted(set(options.measures.values()))}
    con.execute(
        f"""
        CREATE OR REPLACE TABLE held AS
        SELECT a.* EXCLUDE (items, problem), json_transform(a.problem, '{PROBLEM_SHAPE}')
                   AS problem, {line_of(con, "a.rowid")} AS line,
               CASE WHEN a.instrument IS NOT NULL AND NOT a.ragged THEN nullif(a.client, '')
               END AS named_client
        FROM admins a WHERE a.status IN ({QUARANTINED}, {CONFLICTED}, {REPEATED})
        """
    )
    quarantined = f"status = {QUARANTINED} AND instrument IS NOT NULL AND NOT ragged"
    ragged_message = (
        "row has a different number of fields than the header (truncated or broken line, or "
        f"a value holding the delimiter {options.delimiter!r} unquoted)"
    )
    parts = [
        _issue(
            f"status = {QUARANTINED} AND ragged",
            "NULL",
            "NULL",
            "row.field_count",
            "parse",
            _q(ragged_message),
            "NULL",
            0,
        ),  # fmt: skip
        f"SELECT line, NULL, NULL, 'row.field_count', 'parse', {_q(ragged_message)}, NULL, 0, "
        "NULL FROM rejected",
        _issue(
            f"status = {QUARANTINED} AND NOT ragged AND instrument IS NULL",
            _q(options.measure_column),
            "NULL",
            "row.unknown_measure",
            "schema",
            f"'measure ' || {_pyrepr('problem.label')} || ' is not in the site''s measure map "
            f"({', '.join(sorted(options.measures))}); add it, or list it in skip_measures'",
            "problem.label",
            1,
        ),
        _issue(
            f"{quarantined} AND problem.client_blank",
            _q(cols["client_code"]),
            "instrument",
            "row.client_code_blank",
            "identity",
            _q("client code is blank: the administration cannot be attributed to a client"),
            "problem.client_raw",
            2,
        ),
        _issue(
            f"{quarantined} AND problem.client_control",
            _q(cols["client_code"]),
            "instrument",
            "row.client_code_control",
            "identity",
            _q(CLIENT_CONTROL_MESSAGE),
            "problem.client_raw",
            2,
        ),
        _issue(
            f"{quarantined} AND problem.session_bad",
            _q(cols["event"]),
            "instrument",
            "row.session_event",
            "schema",
            _q(
                "event name does not match the site's session pattern "
                f"{site.session_event_pattern.pattern}"
            ),
            "problem.event_raw",
            3,
        ),
        _issue(
            f"{quarantined} AND problem.date_bad",
            _q(cols["session_date"]),
            "instrument",
            "row.session_date_format",
            "date",
            _q(f"session date is blank or not in the format {site.date_format}"),
            "problem.date_raw",
            4,
        ),
        _issue(
            f"{quarantined} AND problem.date_future",
            _q(cols["session_date"]),
            "instrument",
            "row.session_date_future",
            "date",
            _q(f"session date is after the delivery's logical date {logical.isoformat()}"),
            "problem.date_raw",
            5,
        ),
    ]
    bounds = _case(
        "instrument",
        {
            i: _q(f"{m.item_min:g}-{m.item_max:g} in steps of {m.item_step:g}")
            for i, m in instruments.items()
        },
        "''",
    )
    longest = max(m.items for m in instruments.values())
    for k in range(1, longest + 1):
        column = _case(
            "instrument",
            {
                i: _q(forms[i].item_columns(m.items)[k - 1])
                for i, m in instruments.items()
                if m.items >= k
            },
            "NULL",
        )
        parts.append(
            _issue(
                f"{quarantined} AND problem.bad[{k}]",
                column,
                "instrument",
                "item.non_numeric",
                "type",
                f"instrument || ' item {k} is not a number'",
                f"problem.texts[{k}]",
                10 + 2 * k,
            )  # fmt: skip
        )
        parts.append(
            _issue(
                f"{quarantined} AND problem.off[{k}]",
                column,
                "instrument",
                "item.out_of_range",
                "range",
                f"instrument || ' item {k} must be ' || {bounds}",
                f"problem.texts[{k}]",
                11 + 2 * k,
            )  # fmt: skip
        )
    parts.append(
        f"""
        SELECT line, NULL, instrument,
               CASE WHEN status = {CONFLICTED} THEN 'record.conflicting_duplicate'
                    ELSE 'record.exact_duplicate' END,
               CASE WHEN status = {CONFLICTED} THEN 'conflict' ELSE 'duplicate' END,
               CASE WHEN status = {CONFLICTED} THEN 'the file holds different versions of '
                        || instrument || ' for this client and session ' || session_number
                        || '; none is taken until the site resolves it'
                    ELSE 'exact repeat of ' || instrument || ' session ' || session_number
                        || ' for this client; the first copy was taken' END,
               NULL, 100, named_client
        FROM held WHERE status IN ({CONFLICTED}, {REPEATED})
        """
    )
    con.execute(
        "CREATE OR REPLACE TABLE issues (source_row BIGINT, column_name VARCHAR, "
        "instrument VARCHAR, rule_id VARCHAR, category VARCHAR, message VARCHAR, "
        "raw_value VARCHAR, rank INTEGER, client VARCHAR)"
    )
    con.execute("INSERT INTO issues " + " UNION ALL ".join(parts))


def _issue(
    where: str,
    column: str,
    instrument: str,
    rule: str,
    category: str,
    message: str,
    raw: str,
    order: int,
) -> str:
    return (
        f"SELECT line, {column}, {instrument}, {_q(rule)}, {_q(category)}, {message}, {raw}, "
        f"{order}, named_client FROM held WHERE {where}"
    )


def _case(expr: str, mapping: dict[str, str], default: str) -> str:
    if not mapping:
        return default
    whens = " ".join(f"WHEN {_q(k)} THEN {v}" for k, v in mapping.items())
    return f"CASE {expr} {whens} ELSE {default} END"


def _pyrepr(expr: str) -> str:
    """Python's repr of a str (as in the row engine's messages) for ordinary labels."""
    return (
        f"CASE WHEN contains({expr}, '''') AND NOT contains({expr}, '\"') "
        f"THEN '\"' || {expr} || '\"' ELSE '''' || replace({expr}, '''', '\\''') || '''' END"
    )


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
