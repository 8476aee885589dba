"""The acceptance rules as SQL, in one streaming pass over a source's canonical relation.

The unit of acceptance is one administration: one record x one questionnaire it offers. A bad
PHQ-9 cell quarantines that PHQ-9, not the WAI-SR filled in at the same session, so nothing
valid is lost. Every administration ends as accepted, quarantined or not administered (all its
items blank or coded missing), which is what the conservation check adds up.

Table `admins` keeps, per administration in file order (rowid // per_record = the record's
ordinal), its status, natural key and values, and, for quarantined ones only, the flags and raw
cells its quarantine records need. Table `issues` then holds one row per reason, with the
catalogue's rule ids, categories and messages (`ingestion.intake.rules`). Scale limits come from
the instrument registry and the site's configuration; nothing instrument-specific is written
here.

Missing codes: an item cell equal to one of the site's `missing_codes` (text, or the same
number), or carrying a file-declared missing marker (SPSS), is a missing item: never a value,
never out of range, scored like a blank, but its reason is kept (`item_missing`: NULL when no
item of the administration is coded). A questionnaire whose items are all blank or coded is not
administered.

Required fields: a blank therapist code (`row.therapist_code_blank`) or session date
(`row.session_date_format`) quarantines the row unless the site's `required_fields` makes it
optional. The session number the site's pattern captures must be a whole number >= 1, whatever
the pattern (`row.session_number`): 2.5 is never truncated to 2, and 0 or -1 never stored.

Missing items: an administration with more blank (or coded missing) items than the scoring
policy in force allows (`max_missing`, the registry's default or the consortium's override)
cannot be scored, so it is quarantined (`item.too_many_missing`), never stored without a total.

An `ending` column (any format) gives each accepted administration its record's ending type
('planned', 'unplanned', 'open' or NULL: blank and unknown values are ignored, never
quarantined).
"""

from __future__ import annotations

from datetime import date

import duckdb

from ingestion.consortium import SiteConfig
from ingestion.intake import rules
from ingestion.intake.client_codes import CONTROL_RE
from ingestion.intake.missing_codes import MISSING_MARKER, UNLABELLED_MISSING
from ingestion.intake.sources import Source, serial
from ingestion.intake.text_files import SERIAL_HINT, line_of, quote, reset_rejects
from ingestion.registry import Registry

ACCEPTED, QUARANTINED, NOT_ADMINISTERED, CONFLICTED, REPEATED = 0, 1, 2, 3, 4
CLOSED = 5  # an accepted administration whose client withdrew or was erased
PROBLEM_SHAPE = (
    '{"label": "VARCHAR", "client_raw": "VARCHAR", "date_raw": "VARCHAR", '
    '"event_raw": "VARCHAR", "client_blank": "BOOLEAN", "client_control": "BOOLEAN", '
    '"session_bad": "BOOLEAN", "session_number_bad": "BOOLEAN", "therapist_blank": "BOOLEAN", '
    '"date_bad": "BOOLEAN", "date_future": "BOOLEAN", '
    '"too_many_missing": "BOOLEAN", "blanks": "INTEGER", "max_blank": "INTEGER", '
    '"unfinished": "BOOLEAN", "status_held": "BOOLEAN", "form_status": "VARCHAR", '
    '"finished_raw": "VARCHAR", "progress_raw": "VARCHAR", '
    '"texts": ["VARCHAR"], "bad": ["BOOLEAN"], "off": ["BOOLEAN"]}'
)
WHITESPACE = "' \t\n\r\x0b\x0c'"
# Python's str.strip() for the ASCII whitespace it strips; trim() with a character set is slow,
# so it runs only on the rare cell that starts or ends with one of them.
STRIP_MACRO = f"""
CREATE OR REPLACE MACRO pystrip(x) AS CASE
    WHEN ascii(x) IN (9, 10, 11, 12, 13, 32) OR suffix(x, ' ') OR suffix(x, chr(9))
         OR suffix(x, chr(10)) OR suffix(x, chr(11)) OR suffix(x, chr(12)) OR suffix(x, chr(13))
    THEN trim(x, {WHITESPACE}) ELSE x END
"""
STATUS_LABELS = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}


def _case(expr: str, mapping: dict, default: str) -> str:
    if not mapping:
        return default
    whens = " ".join(f"WHEN {k} THEN {v}" for k, v in mapping.items())
    return f"CASE {expr} {whens} ELSE {default} END"


def _in(values) -> str:
    return ", ".join(quote(v) for v in values) or "NULL"


def _whole_grid(instrument) -> bool:
    inverse = 1 / instrument.item_step
    return float(instrument.item_min).is_integer() and abs(inverse - round(inverse)) < 1e-9


def _missing_reason(site: SiteConfig, s: str) -> str:
    """SQL: the missing-code reason of stripped cell text `s` (NULL: not a code)."""
    codes = site.missing_codes
    numeric: dict[float, str] = {}
    for code, reason in codes.items():
        try:
            value = float(code)
        except ValueError:
            continue
        if value == value:
            numeric.setdefault(value, reason)
    assert MISSING_MARKER.startswith("\x00")
    marker = f"(chr(0) || {quote(MISSING_MARKER[1:])})"
    parts = [
        f"WHEN starts_with({s}, {marker}) THEN coalesce(nullif(substr({s}, "
        f"{len(MISSING_MARKER) + 1}), ''), {quote(UNLABELLED_MISSING)})"
    ]
    for code, reason in codes.items():
        parts.append(f"WHEN {s} = {quote(code)} THEN {quote(reason)}")
    for value, reason in numeric.items():
        parts.append(f"WHEN TRY_CAST({s} AS DOUBLE) = {value!r} THEN {quote(reason)}")
    return f"CASE {' '.join(parts)} END"


def classify(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    site: SiteConfig,
    registry: Registry,
    logical: date,
) -> Source:
    """Table `admins`: one streaming pass over the source (the source as finally read)."""
    try:
        _classify(con, source, site, registry, logical)
    except duckdb.Error as exc:
        if SERIAL_HINT not in str(exc):
            raise
        reset_rejects(con)
        source = serial(source)
        _classify(con, source, site, registry, logical)
    return source


def _classify(
    con: duckdb.DuckDBPyConnection,
    source: Source,
    site: SiteConfig,
    registry: Registry,
    logical: date,
) -> None:
    forms = dict(enumerate(site.forms))
    instruments = {j: registry.get(f.instrument) for j, f in forms.items()}
    n = source.n_items
    ks = range(1, n + 1)
    n_items = _case("form", {j: m.items for j, m in instruments.items()}, "0")
    max_blank = _case("form", {j: m.max_missing for j, m in instruments.items()}, "0")
    lo = _case("form", {j: repr(m.item_min) for j, m in instruments.items()}, "0")
    hi = _case("form", {j: repr(m.item_max) for j, m in instruments.items()}, "0")
    step = _case("form", {j: repr(m.item_step) for j, m in instruments.items()}, "1")
    skip_measures = site.long_csv.skip_measures if site.long_csv else ()
    unfinished_skip = site.qualtrics is not None and site.qualtrics.unfinished == "skip"
    redcap = site.redcap
    counting = ("1", "2") if redcap is not None and redcap.accept_unverified else ("2",)
    # Per item k, as scalar columns (vectorized; a lambda over a list costs several times more):
    # `m{k}`: the missing-code reason (NULL: none; only for a site with codes or a reader that
    # marks them); `u{k}`: the cell checked, a coded one blanked; `v{k}`: its number; `c{k}`:
    # 0 blank, 1 valid, 2 not a number, 3 off the scale (range, or off the grid of its step:
    # numpy.isclose(r, round(r)) with its default tolerances); NULL past the form's items.
    coded = (
        bool(site.missing_codes)
        or site.format == "spss_sav"
        or (site.zip is not None and site.zip.format == "spss_sav")
    )
    spaces = quote(" \t\n\r\x0b\x0c")
    ratio = "((v{k} - lo) / step)"
    grid = f"abs({ratio} - round({ratio})) > 1e-8 + 1e-5 * abs(round({ratio}))"
    # A whole number is on the grid of a scale with a whole lower bound and a step dividing
    # one (every registry scale today): the costly grid check runs on fractions only.
    whole = _case("form", {j: str(_whole_grid(m)).lower() for j, m in instruments.items()}, "false")
    per_item = {
        "m": (
            lambda k: (
                f"CASE WHEN {k} <= n_items AND t{k} IS NOT NULL THEN "
                f"{_missing_reason(site, f'trim(t{k}, {spaces})')} END"
            )
        )
        if coded
        else (lambda k: "CAST(NULL AS VARCHAR)"),
        "u": (lambda k: f"CASE WHEN {k} <= n_items AND m{k} IS NULL THEN t{k} END")
        if coded
        else (lambda k: f"CASE WHEN {k} <= n_items THEN t{k} END"),
        "v": lambda k: f"TRY_CAST(u{k} AS DOUBLE)",
        "c": lambda k: (
            f"""CASE WHEN {k} > n_items THEN NULL
            WHEN v{k} IS NULL THEN CASE WHEN coalesce(trim(u{k}, {spaces}), '') = '' THEN 0
                                        ELSE 2 END
            WHEN isnan(v{k}) THEN 2
            WHEN v{k} < lo OR v{k} > hi THEN 3
            WHEN whole AND v{k} = trunc(v{k}) THEN 1
            WHEN {grid.format(k=k)} THEN 3
            ELSE 1 END"""
        ),
    }

    def columns(name: str) -> str:
        return ", ".join(f"{per_item[name](k)} AS {name}{k}" for k in ks)

    def listed(template: str) -> str:
        return f"list_slice([{', '.join(template.format(k=k) for k in ks)}], 1, n_items)"

    top_code = "top_code"
    missing = listed("m{k}") if coded else "CAST(NULL AS VARCHAR[])"
    any_missing = f"coalesce({', '.join(f'm{k}' for k in ks)}) IS NOT NULL" if coded else "false"
    # An accepted administration has no item off the scale: its numbers are its values.
    values = listed("v{k}")
    answered = f"coalesce({top_code} > 0, false)"
    item_problem = f"coalesce({top_code} > 1, false)"
    raw_answered = " OR ".join(
        f"({k} <= n_items AND trim(coalesce(t{k}, ''), {spaces}) <> '')" for k in ks
    )
    raw_answered = f"({raw_answered})"
    future = f"coalesce(parsed_date > DATE '{logical.isoformat()}', false)"
    required = site.required_fields
    # A blank date is allowed where the site made it optional; a date that does not parse never.
    date_bad = (
        "parsed_date IS NULL"
        if required.session_date
        else "(parsed_date IS NULL AND pystrip(coalesce(date_raw, '')) <> '')"
    )
    therapist_blank = "therapist = ''" if required.therapist_code else "false"
    blanks = " + ".join(f"CAST(coalesce(c{k} = 0, false) AS INTEGER)" for k in ks)
    too_many = "(n_blank > max_blank)"
    row_problem = (
        f"(client = '' OR client_control OR session_value IS NULL OR {date_bad} "
        f"OR {therapist_blank} OR {future})"
    )
    status_held = f"(form_status IS NOT NULL AND form_status NOT IN ({_in(counting)}))"
    ending = site.ending
    ending_text = "lower(pystrip(coalesce(ending_raw, '')))"
    ending_type = (
        "CASE "
        + " ".join(
            f"WHEN {ending_text} IN ({_in(codes)}) THEN {quote(kind)}"
            for kind, codes in ending.codes().items()
            if codes
        )
        + " END"
        if ending is not None
        else "CAST(NULL AS VARCHAR)"
    )
    withdrawals = site.withdrawals
    withdraw = (
        f"NOT ragged AND NOT coalesce(unfinished, false) AND "
        f"lower(pystrip(coalesce(withdraw_raw, ''))) IN ({_in(withdrawals.values)})"
        if withdrawals is not None and withdrawals.column
        else "false"
    )
    instrument_of = _case(
        "form", {j: quote(m.instrument_id) for j, m in instruments.items()}, "NULL"
    )
    con.execute(STRIP_MACRO)
    con.execute(
        f"""
        CREATE TABLE admins AS
        WITH cells AS (
            SELECT * FROM ({source.cells})
        ), keyed AS (
            SELECT *,
                   {instrument_of} AS instrument,
                   {n_items} AS n_items, {lo} AS lo, {hi} AS hi, {step} AS step, {whole} AS whole,
                   {max_blank} AS max_blank,
                   pystrip(coalesce(client_raw, '')) AS client,
                   regexp_matches(pystrip(coalesce(client_raw, '')), '{CONTROL_RE}')
                       AS client_control,
                   pystrip(coalesce(therapist_raw, '')) AS therapist,
                   nullif(pystrip(regexp_extract(coalesce(event_raw, ''),
                          {quote(site.session_event_pattern.pattern)}, 1)), '') AS session_text,
                   TRY_CAST(try_strptime(pystrip(coalesce(date_raw, '')),
                            {quote(site.date_format)}) AS DATE) AS parsed_date
            FROM cells
        ), numbered_session AS (
            -- The captured session must be a whole number >= 1 written in digits ("3", or
            -- "3.0" from a numeric export); 2.5, 0, -1, 1e3 or text a loose pattern let
            -- through are held, never truncated or stored.
            SELECT *, CASE WHEN regexp_full_match(session_text, '[0-9]+([.]0+)?')
                                AND session_number_value BETWEEN 1 AND 2147483647
                           THEN CAST(session_number_value AS INTEGER) END AS session_value
            FROM (SELECT *, TRY_CAST(session_text AS DOUBLE) AS session_number_value FROM keyed)
        ), coded AS (
            SELECT *, {columns("m")} FROM numbered_session
        ), usable AS (
            SELECT *, {columns("u")} FROM coded
        ), numbered AS (
            SELECT *, {columns("v")} FROM usable
        ), checked_items AS (
            SELECT *, {columns("c")} FROM numbered
        ), checked AS (
            -- Blank or coded items, counted once (the policy's max_missing limit).
            SELECT *, {blanks} AS n_blank FROM checked_items
        ), summed AS (
            -- Lists of item checks are built once, here, and the strip macro is applied
            -- through one lambda: expanded per item (45 of them) in the quarantine text,
            -- the expression's working vectors alone exceeded the memory limit.
            SELECT *, greatest({", ".join(f"c{k}" for k in ks)}) AS top_code,
                   {listed("c{k}")} AS codes
            FROM checked
        ), statused AS (
            SELECT *,
                CASE
                    WHEN ragged THEN {QUARANTINED}
                    WHEN form IS NULL AND label IN ({_in(skip_measures)}) THEN {NOT_ADMINISTERED}
                    WHEN form IS NULL THEN {QUARANTINED}
                    WHEN coalesce(unfinished, false) AND {str(unfinished_skip).lower()}
                        THEN {NOT_ADMINISTERED}
                    WHEN coalesce(unfinished, false) AND {raw_answered} THEN {QUARANTINED}
                    WHEN coalesce(unfinished, false) THEN {NOT_ADMINISTERED}
                    WHEN {status_held} AND {raw_answered} THEN {QUARANTINED}
                    WHEN NOT {answered} THEN {NOT_ADMINISTERED}
                    WHEN {row_problem} OR {item_problem} OR {too_many} THEN {QUARANTINED}
                    ELSE {ACCEPTED}
                END AS status
            FROM summed
        )
        SELECT CAST(status AS TINYINT) AS status, ragged, form, instrument,
               {_case("form", {j: quote(f.rater_role) for j, f in forms.items()}, "NULL")}
                   AS rater_role,
               -- A code with a control character is keyed without it: its quarantined row
               -- holds the client it most likely names.
               CASE WHEN client_control
                    THEN pystrip(regexp_replace(client, '{CONTROL_RE}', '', 'g'))
                    ELSE client END AS client,
               nullif(therapist, '') AS therapist,
               session_value AS session_number, parsed_date,
               CASE WHEN status = {ACCEPTED} THEN {values} END AS items,
               CASE WHEN status = {ACCEPTED}
                         AND {any_missing} THEN {missing} END
                   AS item_missing,
               CASE WHEN status = {ACCEPTED} THEN {ending_type} END AS ending_type,
               {withdraw} AS withdraw,
               CASE WHEN status = {QUARANTINED} THEN to_json(struct_pack(
                   label, client_raw, date_raw, event_raw,
                   client_blank := client = '', client_control,
                   session_bad := session_text IS NULL,
                   session_number_bad := session_text IS NOT NULL AND session_value IS NULL,
                   therapist_blank := {therapist_blank},
                   date_bad := {date_bad}, date_future := {future},
                   too_many_missing := {too_many}, blanks := n_blank, max_blank,
                   unfinished := coalesce(unfinished, false),
                   status_held := {status_held}, form_status, finished_raw, progress_raw,
                   texts := list_transform({listed("u{k}")}, x -> pystrip(coalesce(x, ''))),
                   bad := list_transform(codes, c -> c = 2),
                   off := list_transform(codes, c -> c = 3))) END AS problem
        FROM statused
        """
    )


def find_duplicates(con: duckdb.DuckDBPyConnection) -> None:
    """Exact repeats keep their first copy; every version of a conflicting key is held back.

    Keys are grouped by a 64-bit hash first (one cheap aggregate over the file); only rows
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
            SELECT rowid AS id, {key},
                   (items, parsed_date, therapist, ending_type, item_missing) AS content
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
    con: duckdb.DuckDBPyConnection,
    source: Source,
    site: SiteConfig,
    registry: Registry,
    logical: date,
    future_basis: str | None = None,
) -> None:
    """Table `issues`: one row per reason, ordered by record, form and rule.

    `logical`: the latest session date allowed (the engine passes the file's delivery date
    when its name gives one); `future_basis` names it in the message."""
    cols = site.columns
    forms = dict(enumerate(site.forms))
    instruments = {j: registry.get(f.instrument) for j, f in forms.items()}
    per = source.per_record
    con.execute(
        f"""
        CREATE OR REPLACE TABLE held AS
        SELECT a.* EXCLUDE (items, problem), json_transform(a.problem, '{PROBLEM_SHAPE}')
                   AS problem, {line_of(con, f"(a.rowid // {per})", source.first_line)} AS line,
               CASE WHEN a.instrument IS NOT NULL AND NOT a.ragged THEN nullif(a.client, '')
               END AS named_client
        FROM admins a WHERE a.status IN ({QUARANTINED}, {CONFLICTED}, {REPEATED})
        """
    )
    quarantined = f"status = {QUARANTINED} AND instrument IS NOT NULL AND NOT ragged"
    checked = f"{quarantined} AND NOT problem.unfinished AND NOT problem.status_held"
    field_count = quote(rules.message("row.field_count", detail=source.ragged_message))
    parts = [
        _issue(f"status = {QUARANTINED} AND ragged", "NULL", "instrument", "row.field_count",
               field_count, "NULL", 0),
    ]  # fmt: skip
    # Lines DuckDB's reader rejected (more fields than it can pad): one per form they offered.
    if per == 1:
        parts.append(
            f"SELECT line, NULL, NULL, 'row.field_count', 'parse', {field_count}, NULL, 0, "
            "NULL, NULL FROM rejected"
        )
    else:
        for j, m in instruments.items():
            parts.append(
                f"SELECT line, NULL, {quote(m.instrument_id)}, 'row.field_count', 'parse', "
                f"{field_count}, NULL, 0, NULL, {j} FROM rejected"
            )
    if site.long_csv is not None:
        options = site.long_csv
        parts.append(
            _issue(
                f"status = {QUARANTINED} AND NOT ragged AND instrument IS NULL",
                quote(options.measure_column),
                "NULL",
                "row.unknown_measure",
                rules.sql_message(
                    "row.unknown_measure",
                    label=_pyrepr("problem.label"),
                    known=quote(", ".join(sorted(options.measures))),
                ),
                "problem.label",
                1,
            )
        )
    if site.qualtrics is not None:
        rule_text = site.qualtrics.final_rule()
        parts.append(
            _issue(
                f"{quarantined} AND problem.unfinished",
                "'Finished'",
                "instrument",
                "response.unfinished",
                rules.sql_message(
                    "response.unfinished",
                    finished="coalesce(nullif(problem.finished_raw, ''), 'blank')",
                    progress="coalesce(problem.progress_raw, '?')",
                    rule=quote(rule_text),
                ),
                "problem.finished_raw",
                1,
            )
        )
    if site.redcap is not None and site.redcap.status_columns:
        options = site.redcap
        status_column = _case(
            "form", {j: quote(f.status_column) for j, f in forms.items() if f.status_column}, "NULL"
        )
        # The form, not only the instrument: a site may hold a client- and a therapist-rated
        # WAI-SR, each with its own status.
        form_name = _case(
            "form",
            {j: quote(f.form_id) for j, f in forms.items() if f.form_id != f.instrument},
            "instrument",
        )
        labels = _case(
            "problem.form_status",
            {quote(k): quote(v) for k, v in STATUS_LABELS.items()},
            "'unknown'",
        )
        counting = "Complete (2) or Unverified (1)" if options.accept_unverified else "Complete (2)"
        parts.append(
            _issue(
                f"{quarantined} AND NOT problem.unfinished AND problem.status_held",
                status_column,
                "instrument",
                "form.not_complete",
                rules.sql_message(
                    "form.not_complete",
                    instrument=form_name,
                    status="coalesce(nullif(problem.form_status, ''), 'blank')",
                    status_label=labels,
                    counting=quote(counting),
                ),
                "problem.form_status",
                1,
            )
        )
    row_rules = [
        ("problem.client_blank", "client_code", "row.client_code_blank", {}, "client_raw", 2),
        ("problem.client_control", "client_code", "row.client_code_control", {}, "client_raw", 2),
        ("problem.session_bad", "event", "row.session_event",
         {"pattern": quote(site.session_event_pattern.pattern)}, "event_raw", 3),
        ("problem.session_number_bad", "event", "row.session_number", {}, "event_raw", 3),
        ("problem.therapist_blank", "therapist_code", "row.therapist_code_blank", {},
         "NULL", 2),
        ("problem.date_bad", "session_date", "row.session_date_format",
         {"date_format": quote(site.date_format)}, "date_raw", 4),
        ("problem.date_future", "session_date", "row.session_date_future",
         {"bound": quote(future_basis or f"the night's logical date {logical.isoformat()}")},
         "date_raw", 5),
    ]  # fmt: skip
    for flag, role, rule_id, fields, raw, rank in row_rules:
        parts.append(
            _issue(
                f"{checked} AND {flag}",
                quote(cols[role]),
                "instrument",
                rule_id,
                rules.sql_message(rule_id, **fields),
                raw if raw == "NULL" else f"problem.{raw}",
                rank,
            )
        )
    # Not scorable under the scoring policy in force: counts only, no cell to quote.
    parts.append(
        _issue(
            f"{checked} AND problem.too_many_missing",
            "NULL",
            "instrument",
            "item.too_many_missing",
            rules.sql_message(
                "item.too_many_missing",
                instrument="instrument",
                blanks="problem.blanks",
                items=_case("form", {j: m.items for j, m in instruments.items()}, "NULL"),
                max_missing="problem.max_blank",
            ),
            "NULL",
            9,
        )
    )
    bounds = {
        j: (quote(f"{m.item_min:g}"), quote(f"{m.item_max:g}"), quote(f"{m.item_step:g}"))
        for j, m in instruments.items()
    }
    for k in range(1, source.n_items + 1):
        column = _case(
            "form",
            {
                j: quote(forms[j].item_columns(m.items)[k - 1])
                for j, m in instruments.items()
                if m.items >= k
            },
            "NULL",
        )
        parts.append(
            _issue(f"{checked} AND problem.bad[{k}]", column, "instrument", "item.non_numeric",
                   rules.sql_message("item.non_numeric", instrument="instrument", k=str(k)),
                   f"problem.texts[{k}]", 10 + 2 * k)
        )  # fmt: skip
        parts.append(
            _issue(
                f"{checked} AND problem.off[{k}]", column, "instrument", "item.out_of_range",
                rules.sql_message(
                    "item.out_of_range",
                    instrument="instrument",
                    k=str(k),
                    item_min=_case("form", {j: b[0] for j, b in bounds.items()}, "''"),
                    item_max=_case("form", {j: b[1] for j, b in bounds.items()}, "''"),
                    item_step=_case("form", {j: b[2] for j, b in bounds.items()}, "''"),
                ),
                f"problem.texts[{k}]", 11 + 2 * k,
            )
        )  # fmt: skip
    for status, rule_id in ((CONFLICTED, "record.conflicting_duplicate"),
                            (REPEATED, "record.exact_duplicate")):  # fmt: skip
        parts.append(
            _issue(
                f"status = {status}",
                "NULL",
                "instrument",
                rule_id,
                rules.sql_message(rule_id, instrument="instrument", session="session_number"),
                "NULL",
                100,
            )
        )
    con.execute(
        "CREATE OR REPLACE TABLE issues (source_row BIGINT, column_name VARCHAR, "
        "instrument VARCHAR, rule_id VARCHAR, category VARCHAR, message VARCHAR, "
        "raw_value VARCHAR, rank INTEGER, client VARCHAR, form INTEGER)"
    )
    con.execute("INSERT INTO issues " + " UNION ALL ".join(parts))


def _issue(where: str, column: str, instrument: str, rule_id: str, message: str, raw: str,
           rank: int) -> str:  # fmt: skip
    category = rules.rule(rule_id).category
    return (
        f"SELECT line, {column}, {instrument}, {quote(rule_id)}, {quote(category)}, {message}, "
        f"{raw}, {rank}, named_client, form FROM held WHERE {where}"
    )


def _pyrepr(expr: str) -> str:
    """Python's repr of a str (as the messages quote a label) for ordinary labels."""
    return (
        f"CASE WHEN contains({expr}, '''') AND NOT contains({expr}, '\"') "
        f"THEN '\"' || {expr} || '\"' ELSE '''' || replace({expr}, '''', '\\''') || '''' END"
    )
