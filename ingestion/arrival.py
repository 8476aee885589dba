"""Whether a delivered file is complete: still arriving, or cut off before its end.

A site's upload can be read while it is still being copied into the inbox, and an export can
stop mid-record (a full disk at the site, a broken transfer). For a snapshot site either looks
like the site deleted its last records, and they would be retracted. Two checks stop that:

- **Still arriving**: a file is read only once it is stable, i.e. not modified for the site's
  quiet period; or, when the site writes a completion marker (`<file><suffix>`, e.g.
  `export.csv.done`), only once that marker exists. A waiting file is left where it is for a
  later run; nothing is recorded for it.
- **Cut off**: a snapshot site's CSV export is rejected whole (`file.truncated`) when its last
  record is incomplete: a quoted field never closed, or no final line break where the site's
  exporter always writes one, or (where it does not) a last record with fewer fields than the
  header. The site's state stays as it was. A last record that does end in a line break was
  finished by the exporter: if it is short, that is a malformed row for the row rules.

The quiet period is physical time on the inbox's clock, not business time: it asks whether a
writer is still busy with the file, which the run's logical date cannot tell.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ingestion.quarantine import Issue

if TYPE_CHECKING:
    from ingestion.consortium import SiteConfig

# Overrides every site's quiet period (seconds), e.g. 0 for a drill on files just copied in.
QUIET_PERIOD_ENV = "BORDIN_QUIET_PERIOD_SECONDS"
DEFAULT_QUIET_PERIOD_SECONDS = 120
CSV_FORMATS = {"redcap_csv", "qualtrics_csv", "long_csv"}
_CHUNK = 1 << 20
# The last record is looked for in this much of the file's end; a longer record is not checked
# for its field count (the quote and line-break checks still cover it).
_TAIL_LIMIT = 8 << 20


@dataclass(frozen=True)
class ArrivalOptions:
    """How a site's files arrive (site key `arrival`)."""

    quiet_period_seconds: int = DEFAULT_QUIET_PERIOD_SECONDS
    # Suffix of the file the site writes once an export is complete, e.g. ".done": then a file
    # is read only when `<file><suffix>` exists, whatever its age.
    completion_marker: str | None = None
    # The site's exporter always ends a CSV with a line break (REDCap, Qualtrics and most
    # feedback systems do): a snapshot without one was cut off.
    final_newline: bool = True


def quiet_period(options: ArrivalOptions) -> float:
    override = os.environ.get(QUIET_PERIOD_ENV)
    return float(override) if override else float(options.quiet_period_seconds)


def is_marker(name: str, options: ArrivalOptions) -> bool:
    """A completion marker is a signal, never a delivery of its own."""
    return bool(options.completion_marker) and name.endswith(options.completion_marker or "")


def still_arriving(path: Path, options: ArrivalOptions, now: float | None = None) -> str | None:
    """Why the file is not read yet (None: it is complete enough to read)."""
    if options.completion_marker:
        marker = path.with_name(path.name + options.completion_marker)
        if marker.is_file() and not marker.is_symlink():
            return None
        return f"waiting for its completion marker {marker.name}"
    quiet = quiet_period(options)
    age = (time.time() if now is None else now) - path.stat().st_mtime
    if age < quiet:
        return f"modified {max(age, 0):.0f} s ago; read once unchanged for {quiet:.0f} s"
    return None


def truncation(path: Path, site: SiteConfig) -> Issue | None:
    """A file-level `file.truncated` issue when a snapshot CSV's last record is cut off."""
    if site.delivery != "snapshot" or site.format not in CSV_FORMATS:
        return None  # a zip or .sav cut off does not open: its reader rejects it
    size = path.stat().st_size
    if size == 0:
        return None  # an empty file is the intake engine's to reject, with their own reason
    delimiter, encoding = _dialect(site)
    quotes = _count_quotes(path, encoding)
    if quotes is None:
        return None  # not text in the site's encoding: the reader rejects it with that reason
    if quotes % 2:
        return _issue("a quoted field is opened and never closed: the file ends inside it")
    tail = _tail(path, size)
    if tail.endswith((b"\n", b"\r")):
        # The exporter finished the last record's line: a record short of fields there is a
        # malformed row, for the row rules (row.field_count), not a cut.
        return None
    if site.arrival.final_newline:
        return _issue(
            "the file does not end with a line break, and this site's exports always do "
            "(arrival.final_newline)"
        )
    header = _header_fields(path, delimiter, encoding)
    last = _last_record_fields(tail, delimiter, encoding)
    if header and last is not None and 0 < last < header:
        return _issue(f"its last record has {last} of the header's {header} fields")
    return None


def _issue(what: str) -> Issue:
    return Issue(
        None,
        None,
        None,
        "file.truncated",
        "parse",
        f"the export is incomplete: {what}. A cut-off snapshot would retract the records it "
        "lost, so the whole file is rejected and the site's data stay as they were; deliver "
        "the complete export again.",
    )


def _dialect(site: SiteConfig) -> tuple[str, str]:
    if site.long_csv:
        return site.long_csv.delimiter, site.long_csv.encoding
    if site.qualtrics:
        return ",", site.qualtrics.encoding
    return ",", "utf-8-sig"


def _count_quotes(path: Path, encoding: str) -> int | None:
    """Quote characters in the file, or None if it is not text in `encoding`. Streamed: memory
    stays at one chunk whatever the file size. The site encodings (UTF-8, cp1252) are
    ASCII-compatible, so a byte '"' is a quote."""
    decoder = codecs.getincrementaldecoder(encoding)()
    total = 0
    with path.open("rb") as handle:
        try:
            while chunk := handle.read(_CHUNK):
                decoder.decode(chunk)
                total += chunk.count(b'"')
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return None
    return total


def _tail(path: Path, size: int) -> bytes:
    with path.open("rb") as handle:
        handle.seek(max(size - _TAIL_LIMIT, 0))
        return handle.read()


def _header_fields(path: Path, delimiter: str, encoding: str) -> int:
    with path.open(encoding=encoding, newline="") as handle:
        row = next(csv.reader(handle, delimiter=delimiter), None)
    return len(row) if row else 0


def _last_record_fields(tail: bytes, delimiter: str, encoding: str) -> int | None:
    """Fields of the file's last record, found from the end: quotes are balanced over the
    whole file, so a line break with an even number of quotes after it ends a record."""
    body = tail.rstrip(b"\r\n")
    if not body:
        return None
    quotes_after = 0
    for position in range(len(body) - 1, -1, -1):
        byte = body[position]
        if byte == 0x22:
            quotes_after += 1
        elif byte == 0x0A and quotes_after % 2 == 0:
            record = body[position + 1 :]
            break
    else:
        return None  # the record starts before the tail we read (or it is the header itself)
    text = record.decode(encoding)
    row = next(csv.reader(io.StringIO(text), delimiter=delimiter), None)
    return len(row) if row else None
