"""Pseudonyms, the site's current state, change data capture and event rows, all in SQL.

An accepted administration is recorded (key not current), amended (content differs) or
unchanged; a snapshot retracts the current keys it no longer holds (never a held or closed one)
unless that is more than the site's limit. Event ids are SHA-256 content hashes chained on the
previous event of the key (the encoding every log so far was written with), and site order
continues from the state's last `site_seq`, in record and form order. Only the distinct codes
cross into Python (to be keyed with the secret); no per-row work does.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ingestion.events import (
    EVENT_SCHEMA,
    ID_VERSION_TAG,
    RESPONSE_AMENDED,
    RESPONSE_RECORDED,
    RESPONSE_RETRACTED,
    RESPONSE_TYPES,
    SCHEMA_VERSION,
)
from ingestion.intake import rules
from ingestion.intake.classify import ACCEPTED, CLOSED, CONFLICTED, QUARANTINED
from ingestion.intake.sources import Source
from ingestion.intake.text_files import line_of, quote
from ingestion.pseudonyms import PseudonymKey
from ingestion.quarantine import QUARANTINE_SCHEMA

KEY = "client_pid, session_number, instrument, rater_role"

# events.event_id as SQL: sha256 of `events.id_text` (fields joined by U+001F, NULL as '').
EVENT_ID_MACRO = f"""
CREATE OR REPLACE MACRO event_id(etype, site, pid, session, instrument, role, items, day,
                                 therapist, ending, missing, prev) AS
    sha256(concat_ws(chr(31), '{ID_VERSION_TAG}', etype, site, pid,
                     coalesce(CAST(session AS VARCHAR), ''), coalesce(instrument, ''),
                     coalesce(role, ''), coalesce(CAST(items AS VARCHAR), ''),
                     coalesce(CAST(day AS VARCHAR), ''), coalesce(therapist, ''),
                     coalesce(ending, ''), coalesce(CAST(to_json(missing) AS VARCHAR), ''),
                     coalesce(prev, '')))
"""
# What an amendment compares: an administration's values, as stored in its event.
CONTENT = "items, session_date, therapist_pid, ending_type, item_missing"


@dataclass
class Plan:
    recorded: int = 0
    amended: int = 0
    retracted: int = 0
    unchanged: int = 0
    closed: int = 0
    live: int = 0
    rejected_message: str | None = None


def pseudonymize(con: duckdb.DuckDBPyConnection, site_id: str, key: PseudonymKey) -> None:
    """Tables `client_map` and `therapist_map`: each distinct code once through the HMAC."""
    clients = [
        r[0]
        for r in con.execute(
            "SELECT DISTINCT client FROM admins WHERE NOT ragged AND client <> ''"
        ).fetchall()
    ]
    therapists = [
        r[0]
        for r in con.execute(
            f"SELECT DISTINCT therapist FROM admins WHERE status = {ACCEPTED} "
            "AND therapist IS NOT NULL"
        ).fetchall()
    ]
    _table(con, "client_map", "client", clients, key.pseudonyms(site_id, "client", clients))
    _table(
        con, "therapist_map", "therapist", therapists,
        key.pseudonyms(site_id, "therapist", therapists),
    )  # fmt: skip


def load_state(con: duckdb.DuckDBPyConnection, files: list[str], site_id: str) -> int:
    """Table `state`: the latest response event per natural key (retracted ones included, as
    the previous event a new one chains on), with the values of current ones (`current`)."""
    con.execute(EVENT_ID_MACRO)
    con.execute(
        "CREATE OR REPLACE TABLE state (client_pid VARCHAR, session_number INTEGER, "
        "instrument VARCHAR, rater_role VARCHAR, event_id VARCHAR, event_type VARCHAR, "
        "current BOOLEAN, items DOUBLE[], session_date DATE, therapist_pid VARCHAR, "
        "ending_type VARCHAR, item_missing VARCHAR[])"
    )
    if not files:
        return 0
    source = "read_parquet($files, union_by_name = true)"
    names = {
        d[0] for d in con.execute(f"SELECT * FROM {source} LIMIT 0", {"files": files}).description
    }
    ending = "ending_type" if "ending_type" in names else "CAST(NULL AS VARCHAR)"
    missing = "item_missing" if "item_missing" in names else "CAST(NULL AS VARCHAR[])"
    types = ", ".join(f"'{t}'" for t in RESPONSE_TYPES)
    con.execute(
        f"""
        INSERT INTO state
        SELECT {KEY}, event_id, event_type, event_type <> '{RESPONSE_RETRACTED}',
               items, session_date, therapist_pid, {ending}, {missing}
        FROM {source}
        WHERE site_id = $site AND event_type IN ({types})
        QUALIFY row_number() OVER (PARTITION BY {KEY} ORDER BY site_seq DESC) = 1
        """,
        {"files": files, "site": site_id},
    )
    return _count(con, "SELECT count(*) FROM state")


ACCEPTED_VIEW = f"""
CREATE OR REPLACE VIEW acc AS
SELECT a.rowid AS id, cm.pid AS client_pid, tm.pid AS therapist_pid, a.session_number,
       a.instrument, a.rater_role, a.parsed_date AS session_date, a.items, a.ending_type,
       a.item_missing
FROM admins a
JOIN client_map cm ON a.client = cm.client
LEFT JOIN therapist_map tm ON a.therapist = tm.therapist
WHERE a.status = {ACCEPTED}
"""


def plan_changes(
    con: duckdb.DuckDBPyConnection,
    closed_clients: dict[str, str],
    state_size: int,
    snapshot: bool,
    max_retraction_fraction: float,
) -> Plan:
    """Close withdrawn clients' lines, then tables `changes` (id, event type, previous event)
    and `retractions` (state keys the snapshot no longer holds)."""
    plan = Plan()
    _table(con, "closed", "pid", list(closed_clients), list(closed_clients.values()), "etype")
    if closed_clients:
        con.execute(
            f"""
            CREATE OR REPLACE TABLE closed_lines AS
            SELECT a.rowid AS id, c.etype FROM admins a
            JOIN client_map cm ON a.client = cm.client JOIN closed c ON c.pid = cm.pid
            WHERE a.status = {ACCEPTED}
            """
        )
        con.execute(
            f"UPDATE admins SET status = {CLOSED} FROM closed_lines c WHERE admins.rowid = c.id"
        )
        plan.closed = _count(con, "SELECT count(*) FROM closed_lines")
    con.execute(ACCEPTED_VIEW)
    if state_size == 0:
        # Nothing stored yet: every accepted line is a first recording (no table needed).
        con.execute(
            f"CREATE OR REPLACE VIEW changes AS SELECT id, '{RESPONSE_RECORDED}' AS event_type, "
            "CAST(NULL AS VARCHAR) AS previous FROM acc"
        )
        plan.recorded = _count(con, f"SELECT count(*) FROM admins WHERE status = {ACCEPTED}")
    else:
        con.execute(
            f"""
            CREATE OR REPLACE TABLE changes AS
            SELECT id, CASE WHEN s.current THEN '{RESPONSE_AMENDED}'
                            ELSE '{RESPONSE_RECORDED}' END AS event_type, s.event_id AS previous
            FROM acc a LEFT JOIN state s USING ({KEY})
            WHERE NOT coalesce(s.current, false)
               OR ({", ".join("a." + c for c in CONTENT.split(", "))})
                  IS DISTINCT FROM ({", ".join("s." + c for c in CONTENT.split(", "))})
            """
        )
        counts = dict(
            con.execute("SELECT event_type, count(*) FROM changes GROUP BY ALL").fetchall()
        )
        plan.recorded = counts.get(RESPONSE_RECORDED, 0)
        plan.amended = counts.get(RESPONSE_AMENDED, 0)
        plan.unchanged = _count(con, "SELECT count(*) FROM acc") - plan.recorded - plan.amended
    con.execute(
        "CREATE OR REPLACE TABLE retractions (client_pid VARCHAR, session_number INTEGER, "
        "instrument VARCHAR, rater_role VARCHAR, previous VARCHAR)"
    )
    if not snapshot or state_size == 0:
        return plan
    live = "s.current AND s.client_pid NOT IN (SELECT pid FROM closed)"
    con.execute(
        f"""
        INSERT INTO retractions
        SELECT s.client_pid, s.session_number, s.instrument, s.rater_role, s.event_id
        FROM state s
        WHERE {live} AND NOT EXISTS (
            SELECT 1 FROM (
                SELECT {KEY} FROM acc
                UNION ALL
                SELECT cm.pid, a.session_number, a.instrument, a.rater_role
                FROM admins a JOIN client_map cm ON a.client = cm.client
                WHERE a.instrument IS NOT NULL AND NOT a.ragged
                  AND a.session_number IS NOT NULL
                  AND a.status IN ({QUARANTINED}, {CONFLICTED})
            ) p
            WHERE p.client_pid = s.client_pid AND p.session_number = s.session_number
              AND p.instrument = s.instrument AND p.rater_role = s.rater_role)
        """
    )
    plan.retracted = _count(con, "SELECT count(*) FROM retractions")
    n_live = _count(con, f"SELECT count(*) FROM state s WHERE {live}")
    plan.live = n_live
    if n_live and plan.retracted > max_retraction_fraction * n_live:
        plan.rejected_message = (
            f"this full export would retract {plan.retracted} of the site's {n_live} "
            f"current administrations (limit {max_retraction_fraction:.0%}); it is "
            "treated as a broken export and nothing from it is applied. Re-export, or "
            "raise max_retraction_fraction for this site if the deletions are real."
        )
    return plan


def write_events(
    con: duckdb.DuckDBPyConnection,
    target: str,
    source: Source,
    *,
    site_id: str,
    first_seq: int,
    source_file: str,
    sha256: str,
    batch_id: str,
    actor: str,
    logical: str,
    ingested_at: str,
) -> int:
    """COPY the file's events to one Parquet file; returns the row count.

    Site order is line order: a changed line's place is the number of changed lines before it.
    It is counted per block of 64 lines (one bit mask and one running total per block, a
    small table), so the wide work (pseudonyms, event ids, the envelope) runs in parallel on
    the lines as they are, with no sort and no numbered copy, and the event file need not be
    written in site order.
    """
    all_new = _count(con, "SELECT count(*) FROM state") == 0
    counted = f"admins WHERE status = {ACCEPTED}" if all_new else "changes"
    n_changed = _count(con, f"SELECT count(*) FROM {counted}")
    n_total = n_changed + _count(con, "SELECT count(*) FROM retractions")
    if not n_total:
        return 0
    fixed = {
        "schema_version": f"{SCHEMA_VERSION}",
        "site_id": quote(site_id),
        "source_file": quote(source_file),
        "source_sha256": quote(sha256),
        "batch_id": quote(batch_id),
        "actor": quote(actor),
        "logical_date": f"DATE '{logical}'",
        "ingested_at": f"TIMESTAMPTZ '{ingested_at}'",
        "event_id": (
            f"event_id(event_type, {quote(site_id)}, client_pid, session_number, instrument, "
            f"rater_role, {CONTENT}, supersedes_event_id)"
        ),
    }
    if all_new:
        # Nothing stored yet: every accepted line is a first recording (no join needed).
        ids = f"SELECT rowid AS id FROM admins WHERE status = {ACCEPTED}"
        lines = (
            f"SELECT a.rowid AS id, '{RESPONSE_RECORDED}' AS event_type, "
            f"CAST(NULL AS VARCHAR) AS previous, a.* FROM admins a WHERE a.status = {ACCEPTED}"
        )
    else:
        ids = "SELECT id FROM changes"
        lines = (
            "SELECT c.id, c.event_type, c.previous, a.* "
            "FROM changes c JOIN admins a ON a.rowid = c.id"
        )
    con.execute(
        f"""
        CREATE OR REPLACE TABLE places AS
        SELECT block, bits,
               coalesce(sum(bit_count(bits)) OVER (ORDER BY block ROWS BETWEEN UNBOUNDED
                                                   PRECEDING AND 1 PRECEDING), 0) AS before
        FROM (
            SELECT id // 64 AS block, bit_or(CAST(1 AS UBIGINT) << CAST(id % 64 AS UBIGINT))
                   AS bits
            FROM ({ids}) GROUP BY block
        )
        """
    )
    place = (
        "p.before + bit_count(p.bits & ((CAST(1 AS UBIGINT) << CAST(c.id % 64 AS UBIGINT)) - 1))"
    )
    changed = f"""
        SELECT c.event_type, cm.pid AS client_pid, tm.pid AS therapist_pid, c.session_number,
               c.parsed_date AS session_date, c.instrument, c.rater_role, c.items,
               c.previous AS supersedes_event_id, c.ending_type, c.item_missing,
               CASE WHEN c.event_type = '{RESPONSE_AMENDED}' THEN 'changed in the site''s export'
               END AS reason,
               {line_of(con, f"(c.id // {source.per_record})", source.first_line)} AS source_row,
               {first_seq} + {place} AS site_seq
        FROM ({lines}) c
        JOIN places p ON p.block = c.id // 64
        JOIN client_map cm ON cm.client = c.client
        LEFT JOIN therapist_map tm ON tm.therapist = c.therapist
    """
    retracted = f"""
        SELECT '{RESPONSE_RETRACTED}', client_pid, NULL, session_number, NULL, instrument,
               rater_role, NULL, previous, NULL, NULL, 'absent from the site''s full export',
               NULL, {first_seq - 1 + n_changed} + row_number() OVER (ORDER BY {KEY})
        FROM retractions
    """
    columns = [
        f"CAST({fixed.get(f.name, f.name if f.name in _CARRIED else 'NULL')} "
        f"AS {_duck_type(f.type)}) AS {f.name}"
        for f in EVENT_SCHEMA
    ]
    # The file is unordered (site_seq says the order): letting DuckDB write row groups as
    # they come keeps the copy parallel and out of a reorder buffer.
    con.execute("SET preserve_insertion_order = false")
    con.execute(
        f"""
        COPY (SELECT {", ".join(columns)} FROM ({changed} UNION ALL {retracted}))
        TO {quote(target)} (FORMAT parquet, COMPRESSION snappy)
        """
    )
    con.execute("SET preserve_insertion_order = true")
    return n_total


_CARRIED = {
    "event_type",
    "client_pid",
    "therapist_pid",
    "session_number",
    "session_date",
    "instrument",
    "rater_role",
    "items",
    "supersedes_event_id",
    "ending_type",
    "item_missing",
    "reason",
    "source_row",
    "site_seq",
}


def write_quarantine(
    con: duckdb.DuckDBPyConnection,
    target: str,
    source: Source,
    *,
    site_id: str,
    source_file: str,
    sha256: str,
    batch_id: str,
    logical: str,
) -> int:
    """COPY the file's quarantine records (plus closed clients' values) to one Parquet file,
    ordered by record, form and rule; returns the row count (0: no file). `client_pid` where
    the record names a client, so erasure can find them. Written by DuckDB, so a file with
    millions of bad rows costs no memory in Python."""
    if _count(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = "
              "'closed_lines'"):  # fmt: skip
        con.execute(
            f"""
            INSERT INTO issues
            SELECT {line_of(con, f"(a.rowid // {source.per_record})", source.first_line)},
                   NULL, a.instrument, 'client.' || c.etype, 'identity',
                   {quote(rules.message("client.consent_withdrawn"))}, NULL, 200, a.client,
                   a.form
            FROM admins a JOIN closed_lines c ON c.id = a.rowid
            """
        )
    n = _count(con, "SELECT count(*) FROM issues")
    if not n:
        return 0
    values = {
        "site_id": quote(site_id),
        "source_file": quote(source_file),
        "source_sha256": quote(sha256),
        "client_pid": "cm.pid",
        "batch_id": quote(batch_id),
        "logical_date": f"DATE '{logical}'",
    }
    columns = ", ".join(
        f"CAST({values.get(f.name, 'i.' + f.name)} AS {_duck_type(f.type)}) AS {f.name}"
        for f in QUARANTINE_SCHEMA
    )
    con.execute(
        f"""
        COPY (
            SELECT {columns}
            FROM issues i LEFT JOIN client_map cm ON cm.client = i.client
            ORDER BY i.source_row NULLS FIRST, i.form NULLS FIRST, i.rank, i.column_name
        ) TO {quote(target)} (FORMAT parquet, COMPRESSION zstd)
        """
    )
    return n


def _table(
    con: duckdb.DuckDBPyConnection,
    name: str,
    key_column: str,
    keys: list[str],
    values: list[str],
    value_column: str = "pid",
) -> None:
    """A small string-to-string table from Python lists."""
    data = pa.table(
        {key_column: keys, value_column: values},
        schema=pa.schema([(key_column, pa.string()), (value_column, pa.string())]),
    )
    con.register(f"{name}_arrow", data)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")


def _duck_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_int16(arrow_type):
        return "SMALLINT"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_date32(arrow_type):
        return "DATE"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ"
    if pa.types.is_list(arrow_type):
        return _duck_type(arrow_type.value_type) + "[]"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    raise TypeError(f"no DuckDB type for {arrow_type}")


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return int(con.execute(sql).fetchone()[0])


def export_withdrawals(con: duckdb.DuckDBPyConnection, source: Source) -> list[tuple[int, str]]:
    """(record number, client pseudonym) of each record whose withdrawal column is set, in
    file order; a record offering several forms counts once."""
    per = source.per_record
    return con.execute(
        f"""
        SELECT {line_of(con, "w.record", source.first_line)}, cm.pid
        FROM (SELECT DISTINCT rowid // {per} AS record, client FROM admins WHERE withdraw
              AND client <> '') w
        JOIN client_map cm ON cm.client = w.client
        ORDER BY w.record
        """
    ).fetchall()
