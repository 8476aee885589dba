"""What every reader shares: the result type, decoding, and rows a reader itself sets aside.

Readers other than REDCap may hold back whole rows before validation (an unfinished Qualtrics
response, a long-table row of an unknown measure). Those rows never reach `validate_site_rows`,
so the reader counts them itself, in the same unit validation uses (one administration = one
row x one configured questionnaire), and `fold_into` adds them to the validation result so that
offered = accepted + quarantined + not administered still holds for the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import pandas as pd

from ingestion.consortium import SiteConfig
from ingestion.quarantine import Issue
from ingestion.readers.redcap_csv import ReadResult
from ingestion.validate import Validated

# Cells of a data row: what a row offers once the reader has mapped it to canonical columns.
Key = tuple[str, int, str, str]


@dataclass(frozen=True)
class SiteRead(ReadResult):
    """A ReadResult plus the administrations the reader accounted for on its own."""

    row_issues: tuple[Issue, ...] = ()
    quarantined: int = 0
    not_administered: int = 0
    # Administrations validation will see as "not administered" that were never offered at all
    # (a long-table row offers only its own measure): taken back out of offered.
    not_offered: int = 0
    # Natural keys held back by the reader: a snapshot must not read them as deleted.
    held_keys: frozenset[Key] = field(default_factory=frozenset)


def file_issue(rule_id: str, category: str, message: str, rows_in: int = 0) -> SiteRead:
    return SiteRead(None, Issue(None, None, None, rule_id, category, message), rows_in)


def decode(raw: bytes, encoding: str, hint: str) -> str | SiteRead:
    """Text of the file, or the file-level encoding issue. UTF-8 always accepts a BOM."""
    codec = "utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        return file_issue(
            "file.encoding",
            "encoding",
            f"not {encoding} (byte {exc.start}: {raw[exc.start : exc.start + 1]!r}); {hint}",
        )


@dataclass
class Holdback:
    """Rows a reader sets aside, counted per configured questionnaire."""

    site: SiteConfig
    issues: list[Issue] = field(default_factory=list)
    quarantined: int = 0
    not_administered: int = 0
    held: set[Key] = field(default_factory=set)

    def session_of(self, event: str) -> int | None:
        match = self.site.session_event_pattern.search(event or "")
        try:
            return int(match.group(1)) if match else None
        except ValueError:
            return None

    def quarantine(
        self,
        row: int,
        client_code: str,
        event: str,
        instruments: Iterable[tuple[str, str]],
        column: str | None,
        rule_id: str,
        category: str,
        message: str,
        raw_value: str | None = None,
    ) -> None:
        """One quarantined administration per (instrument, rater role) given."""
        session = self.session_of(event)
        for instrument, role in instruments:
            self.quarantined += 1
            self.issues.append(
                Issue(row, column, instrument, rule_id, category, message, raw_value)
            )
            if instrument is not None and client_code.strip() and session is not None:
                self.held.add((client_code.strip(), session, instrument, role))

    def result(self, frame: pd.DataFrame, rows_in: int, *, not_offered: int = 0) -> SiteRead:
        return SiteRead(
            frame,
            None,
            rows_in,
            row_issues=tuple(self.issues),
            quarantined=self.quarantined,
            not_administered=self.not_administered,
            not_offered=not_offered,
            held_keys=frozenset(self.held),
        )


def fold_into(validated: Validated, read: ReadResult) -> Validated:
    """Add what the reader set aside to the validation result (no-op for plain ReadResults)."""
    if not isinstance(read, SiteRead):
        return validated
    validated.offered += read.quarantined + read.not_administered - read.not_offered
    validated.quarantined += read.quarantined
    validated.not_administered += read.not_administered - read.not_offered
    validated.issues.extend(read.row_issues)
    validated.held_keys |= set(read.held_keys)
    return validated


def text_frame(
    rows: list[list[str]],
    columns: list[str],
    source_rows: list[int],
    ragged: list[bool] | None = None,
) -> pd.DataFrame:
    """The frame validation expects: text cells, `__source_row`, `__ragged`."""
    frame = pd.DataFrame(
        {c: pd.Series([r[i] for r in rows], dtype="string") for i, c in enumerate(columns)}
    )
    frame["__source_row"] = pd.Series(source_rows, dtype="int64")
    frame["__ragged"] = pd.Series(ragged if ragged is not None else [False] * len(rows), dtype=bool)
    return frame
