"""Zip archives holding one export of another format, read in memory: nothing is extracted.

Accounting: a zip is ONE delivered file. Its SHA-256 is the delivery's identity (a re-sent zip
is a no-op), its intake row and quarantine records carry the zip's name, and `__source_row` is
the line inside the export it holds. So that row numbers stay unambiguous, a zip must hold
exactly one member matching `zip.member_glob`; other members (a README, a codebook) are ignored
but still count toward the limits.

A zip of SPSS .sav files (`zip.format: spss_sav`, member_glob defaulting to `*.sav`) is read
from the member's bytes in memory like every other format.

Refused whole, with category `archive`: not a zip; more than `max_members` members; a member
path that is absolute, has a drive letter or a `..` part, or is a symlink; encrypted members;
declared or actual uncompressed size above `max_total_bytes` (the actual size is measured while
reading, so a zip that lies about its sizes is caught too); no or several data members.

A REDCap data dictionary member (`redcap.data_dictionary_glob`) is not a data member: it is read
and applied to the export like one delivered next to it.
"""

from __future__ import annotations

import fnmatch
import io
import re
import stat
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ingestion.consortium import SiteConfig
from ingestion.quarantine import Issue
from ingestion.readers.base import SiteRead, file_issue
from ingestion.readers.redcap_csv import ReadResult
from ingestion.readers.redcap_dictionary import Dictionary, is_dictionary, parse_dictionary
from ingestion.registry import Registry

DRIVE = re.compile(r"^[A-Za-z]:")
CHUNK = 1 << 20


def _archive(rule: str, message: str) -> SiteRead:
    return file_issue(f"archive.{rule}", "archive", message)


def unsafe_member(name: str) -> str | None:
    """Why a member name could escape the folder it would be extracted into, or None."""
    if name.startswith(("/", "\\")) or DRIVE.match(name):
        return "is an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out of the archive folder (..)"
    return None


def read_zip(
    raw: bytes,
    site: SiteConfig,
    registry: Registry,
    dictionary: Dictionary | Issue | None = None,
) -> ReadResult:
    """`dictionary`: a REDCap data dictionary delivered next to the zip; one inside wins."""
    options = site.zip
    assert options is not None
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError) as exc:
        return _archive("unreadable", f"not a readable zip archive: {exc}")
    with archive:
        members = archive.infolist()
        if len(members) > options.max_members:
            return _archive(
                "too_many_members",
                f"{len(members)} members, more than the limit of {options.max_members}",
            )
        for info in members:
            why = unsafe_member(info.filename)
            if why:
                return _archive("unsafe_path", f"member {info.filename!r} {why}; nothing read")
            if stat.S_ISLNK(info.external_attr >> 16):
                return _archive("symlink", f"member {info.filename!r} is a symbolic link")
        declared = sum(i.file_size for i in members)
        if declared > options.max_total_bytes:
            return _archive(
                "too_large",
                f"uncompressed size {declared} bytes exceeds the limit of "
                f"{options.max_total_bytes} (zip bomb guard)",
            )
        files = [i for i in members if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        dictionaries = [i for i in files if is_dictionary(PurePosixPath(i.filename).name, site)]
        data = [
            i
            for i in files
            if i not in dictionaries
            and fnmatch.fnmatch(PurePosixPath(i.filename).name, options.member_glob)
        ]
        if len(data) != 1:
            found = ", ".join(i.filename for i in data) or "none"
            return _archive(
                "data_members",
                f"a zip must hold exactly one export matching {options.member_glob!r}; "
                f"found {len(data)} ({found})",
            )
        (member,) = data
        if member.flag_bits & 0x1:
            return _archive("encrypted", f"member {member.filename!r} is encrypted")
        try:
            content = _read_capped(archive, member, options.max_total_bytes)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError) as exc:
            return _archive("unreadable", f"member {member.filename!r} cannot be read: {exc}")
        if content is None:
            return _archive(
                "too_large",
                f"member {member.filename!r} expands beyond {options.max_total_bytes} bytes "
                "(zip bomb guard)",
            )
        if dictionaries and options.format == "redcap_csv":
            newest = max(dictionaries, key=lambda i: PurePosixPath(i.filename).name)
            try:
                text = _read_capped(archive, newest, options.max_total_bytes)
            except (zipfile.BadZipFile, NotImplementedError, OSError) as exc:
                return _archive("unreadable", f"member {newest.filename!r} cannot be read: {exc}")
            if text is None:
                return _archive("too_large", f"member {newest.filename!r} is too large")
            dictionary = parse_dictionary(text, newest.filename)
    return read_bytes(content, options.format, site, registry, dictionary)


def _read_capped(archive: zipfile.ZipFile, member: zipfile.ZipInfo, limit: int) -> bytes | None:
    out = bytearray()
    with archive.open(member) as handle:
        while block := handle.read(CHUNK):
            out += block
            if len(out) > limit:
                return None
    return bytes(out)


def read_bytes(
    raw: bytes,
    fmt: str,
    site: SiteConfig,
    registry: Registry,
    dictionary: Dictionary | Issue | None = None,
) -> ReadResult:
    """Read one export's bytes in the given (non-zip) format."""
    from ingestion.readers.dispatch import required_columns
    from ingestion.readers.long_csv import read_long_csv
    from ingestion.readers.qualtrics_csv import read_qualtrics_csv
    from ingestion.readers.redcap_status import read_redcap
    from ingestion.readers.spss_sav import read_spss_sav

    if fmt == "qualtrics_csv":
        return read_qualtrics_csv(raw, site, registry)
    if fmt == "long_csv":
        return read_long_csv(raw, site, registry)
    if fmt == "spss_sav":
        return read_spss_sav(raw, site, registry)
    # The REDCap reader reads a path: a private temp folder and a fixed name, never the
    # member's own name, so nothing lands outside it.
    with tempfile.TemporaryDirectory(prefix="bordin-zip-") as folder:
        target = Path(folder) / "member.csv"
        target.write_bytes(raw)
        return read_redcap(target, site, registry, required_columns(site, registry), dictionary)
