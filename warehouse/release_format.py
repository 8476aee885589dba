"""What a release holds, as a numbered format: a rebuild can only reproduce its own format.

A release is reproduced byte for byte by rebuilding it from the event log at the versions its
manifest records. That holds while the code that writes the files is the same; when a change
alters what every release carries (a new file, field metadata in the Parquet files, new column
types), a release published before it cannot come out identical from the new code. Each such
change bumps `RELEASE_FORMAT` and says what changed here, so that `bordin rebuild` of an older
release names the change and the code version to check out instead of listing mismatches.
"""

from __future__ import annotations

RELEASE_FORMAT = 3

# Format -> what it changed against the one before. A manifest without `release_format` was
# written in format 1.
CHANGES: dict[int, str] = {
    1: "marts as Parquet and marts.duckdb, rules/, report.html and manifest.json",
    2: "a codebook in every release: column descriptions as Parquet field metadata and DuckDB "
    "comments, codebook.csv and codebook.html, all in the content hash",
    3: "scores as DECIMAL at the registry's precision with exact aggregates, the gate's "
    "gate_summary.json and the scoring policy in force (rules/scoring_policy.json)",
}


def manifest_format(manifest: dict) -> int:
    return int(manifest.get("release_format", 1))


def format_problem(manifest: dict) -> str | None:
    """Why this code cannot rebuild the release byte for byte, or None when it can try."""
    published = manifest_format(manifest)
    if published == RELEASE_FORMAT:
        return None
    code = manifest.get("code_version", "unknown")
    if published > RELEASE_FORMAT:
        return (
            f"it was published in release format {published}, newer than this Bordin's "
            f"{RELEASE_FORMAT}: rebuild it with the code that published it ({code})"
        )
    changes = "; ".join(
        f"format {n}: {CHANGES[n]}" for n in range(published + 1, RELEASE_FORMAT + 1)
    )
    return (
        f"it was published in release format {published}; this Bordin writes format "
        f"{RELEASE_FORMAT} ({changes}), so its files cannot come out byte for byte. Its data "
        f"are unchanged: check out the code that published it ({code}) and run "
        "`bordin rebuild` there to reproduce it"
    )
