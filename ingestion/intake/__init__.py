"""The one intake engine: every export format, one DuckDB pipeline.

`sources` turns each format into one canonical relation, `classify` applies the acceptance
rules of the catalogue (`rules`), `changes` pseudonymizes, diffs against the site's state and
writes the events, and `engine` runs the stages for one file.
"""
