"""Pick the reader for a site's `format`; every reader yields the same canonical frame.

REDCap reads a path (its data dictionary sits next to it); every other format, SPSS .sav
included, is read from the file's bytes through `zip_archive.read_bytes`, the same entry a
zip member takes.
"""

from __future__ import annotations

from pathlib import Path

from ingestion.consortium import SiteConfig
from ingestion.quarantine import Issue
from ingestion.readers.redcap_csv import ReadResult
from ingestion.readers.redcap_dictionary import Dictionary, find_dictionary, parse_dictionary
from ingestion.readers.redcap_status import read_redcap
from ingestion.registry import Registry


def required_columns(site: SiteConfig, registry: Registry) -> list[str]:
    """Canonical columns validation reads: the site's role columns, every form's items, and the
    withdrawal and ending columns when configured."""
    required = [site.columns[c] for c in ("client_code", "therapist_code", "session_date", "event")]
    for form in site.forms:
        required += form.item_columns(registry.get(form.instrument).items)
    if site.withdrawals and site.withdrawals.column:
        required.append(site.withdrawals.column)
    if site.ending is not None:
        required.append(site.ending.column)
    return required


def delivered_dictionary(path: Path, site: SiteConfig) -> Dictionary | Issue | None:
    """The site's REDCap data dictionary delivered next to `path`, parsed (None: none sent)."""
    found = find_dictionary(path.parent, site)
    return None if found is None else parse_dictionary(found.read_bytes(), found.name)


def read_export(path: Path, site: SiteConfig, registry: Registry) -> ReadResult:
    if site.format == "redcap_csv":
        return read_redcap(
            path, site, registry, required_columns(site, registry), delivered_dictionary(path, site)
        )
    from ingestion.readers.zip_archive import read_bytes, read_zip

    raw = path.read_bytes()
    if site.format == "zip":
        return read_zip(raw, site, registry, delivered_dictionary(path, site))
    return read_bytes(raw, site.format, site, registry)
