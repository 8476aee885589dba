"""Carry-down: a record-level value written once (on the record's parent row) applied to the
record's other rows, as one SQL window over the source's canonical relation.

A REDCap repeating-instrument export writes the therapist on the record's client-level row
(blank `redcap_repeat_instrument`) and leaves it blank on every session row; a longitudinal
project may hold it on the first event only. Without carry-down all those sessions would have
no therapist. Per record (the client code, stripped), a row's own non-blank value wins and a
blank one takes the parent's: the first non-blank value among the record's parent rows
(`from: parent_row`), or the value on the record's first row in the file (`from: first_row`).
The parent row must be in the same export.

The window runs over a narrow projection and its result is put back in file order (the engine
numbers records by their position) as DuckDB sorts that spill to disk under the intake memory
limit; the wide rows are paired with it by position, never sorted. So a large export carries
down in bounded memory. Sites without `carry_down` pay nothing: their relation is unchanged.
"""

from __future__ import annotations

import duckdb

from ingestion.consortium import SiteConfig
from ingestion.intake.text_files import PARALLEL, SERIAL, SERIAL_HINT, quote, reset_rejects

SPACES = quote(" \t\n\r\x0b\x0c")


def canonical_cell(site: SiteConfig, column: str) -> str:
    """The canonical relation's column that holds export column `column` (validated on load
    to be the therapist, ending or withdrawal column)."""
    if column == site.columns["therapist_code"]:
        return "therapist_raw"
    if site.ending is not None and column == site.ending.column:
        return "ending_raw"
    if site.withdrawals is not None and column == site.withdrawals.column:
        return "withdraw_raw"
    raise ValueError(f"{column!r} is not a column that can be carried down")


def _blank(expr: str) -> str:
    return f"trim(coalesce({expr}, ''), {SPACES}) = ''"


def carried(con: duckdb.DuckDBPyConnection, cells: str, site: SiteConfig) -> str:
    """`cells` with the site's carry-down columns filled from each record's parent row.

    Two steps keep memory bounded whatever the export's size. Table `carry_values` holds, in
    file order, each canonical row's carried values: a window over a narrow projection (row
    ordinal, client, parent and carried cells) partitioned by record, then sorted back by
    ordinal; both spill to disk. The returned relation then pairs each row of `cells` with
    its carried values by position (POSITIONAL JOIN, streaming), so the wide rows are never
    sorted or held.
    """
    options = site.carry_down
    if options is None:
        return cells
    targets = list(dict.fromkeys(canonical_cell(site, c) for c in options.columns))
    window = (
        "OVER (PARTITION BY trim(coalesce(client_raw, ''), "
        f"{SPACES}) ORDER BY carry_ord ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)"
    )
    parents = []
    for cell in targets:
        own = f"CASE WHEN NOT {_blank(cell)} THEN {cell} END"
        if options.source == "parent_row":
            value = (
                f"first_value(CASE WHEN {_blank('parent_raw')} THEN {own} END IGNORE NULLS) "
                f"{window}"
            )
        else:
            value = f"first_value({own}) {window}"
        parents.append(f"{value} AS carry_{cell}")
    narrow = ", ".join(["client_raw", "parent_raw", *targets])
    statement = f"""
        CREATE OR REPLACE TABLE carry_values AS
        SELECT carry_client, {", ".join(f"carry_{cell}" for cell in targets)}
        FROM (
            SELECT carry_ord, client_raw AS carry_client, {", ".join(parents)}
            FROM (SELECT *, row_number() OVER () AS carry_ord FROM (SELECT {narrow} FROM ({cells})))
        )
        ORDER BY carry_ord
    """
    try:
        con.execute(statement)
    except duckdb.Error as exc:
        if SERIAL_HINT not in str(exc):
            raise
        reset_rejects(con)
        con.execute(statement.replace(PARALLEL, SERIAL))
    # The scan runs again for the engine's own pass, which records the rejected lines.
    reset_rejects(con)
    # Both scans read the same rows in the same order; should they ever not, the row pairs
    # would differ in client and the file fails loudly instead of taking another's value.
    aligned = (
        "CASE WHEN carry_client IS DISTINCT FROM client_raw THEN "
        "error('carry-down: the export was read differently twice') END"
    )
    replaced = ", ".join(
        f"coalesce({aligned}, CASE WHEN carry_{cell} IS NOT NULL AND {_blank(cell)} "
        f"THEN carry_{cell} ELSE {cell} END) AS {cell}"
        for cell in targets
    )
    hidden = ", ".join(["carry_client", *(f"carry_{cell}" for cell in targets)])
    return f"""
        SELECT * EXCLUDE ({hidden}) REPLACE ({replaced})
        FROM ({cells}) POSITIONAL JOIN carry_values
    """
