"""The columnar ingestion engine: large feedback-system long tables, streamed through DuckDB.

The row engine (`ingestion.ingest` with `validate.py`) holds a file and the site's state in
Python; that is clear and fast enough for the exports most sites send, but neither its memory
nor its time is bounded by anything but the file's size. This engine applies the same rules,
with the same rule ids, messages, counts, event ids and site order, as SQL over a DuckDB scratch
database that spills to disk under a memory limit, so a 1 GB export ingests in bounded memory
at close to DuckDB's own CSV speed. `tests/test_columnar_engine.py` runs both engines on the
same deliveries and requires identical event logs and quarantine records.
"""
