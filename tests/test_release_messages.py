"""No raw cell text in any release: quarantine messages reach a mart as rule ids, column names,
counts and positions only.

A red-team run put a long-table measure cell holding a sentence with a name and a date of birth,
verbatim, into `fct_quarantine.example_message` of a published release. The fix is structural:
the restricted store's messages (which quote cells, file and member names) never enter the
warehouse, and the marts describe a record by rule id, instrument, column and row. Here a name and
a date of birth are planted in a long table's measure cell and in a zip member's name, both of
which today's messages quote, and every release file is scanned for them.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path

import duckdb
import pytest
import yaml

from tests.conftest import FIXTURES, night
from tests.test_release_identifiers import _cells

pytestmark = pytest.mark.slow

NAME, BORN = "Plonkeria Vandersnoot", "02.12.1979"
SENTENCE = f"{NAME} geb. {BORN} rief an"
IDENTIFIERS = FIXTURES / "formats" / "identifiers"


def _consortium(home: Path) -> None:
    tiny = yaml.safe_load((FIXTURES / "tiny" / "consortium.yml").read_text())
    ident = yaml.safe_load((IDENTIFIERS / "consortium.yml").read_text())
    sites = {s["site_id"]: s for s in ident["sites"]}
    tiny["sites"] += [sites["longid"], sites["zipid"]]
    (home / "consortium.yml").write_text(yaml.safe_dump(tiny, sort_keys=False))


def _deliver(home: Path) -> None:
    longid = home / "inbox" / "longid"
    longid.mkdir(parents=True)
    header = "Klient;Therapeut;Sitzung;Datum;Measure;" + ";".join(f"Item{n}" for n in range(1, 13))
    good = "L-7;T1;1;05.03.2026;WAI-SR;" + ";".join(["4"] * 12)
    planted = f"L-7;T1;1;05.03.2026;{SENTENCE};" + ";".join(["4"] * 12)
    (longid / "feedback.csv").write_text(f"{header}\n{good}\n{planted}\n", encoding="utf-8")

    zipid = home / "inbox" / "zipid"
    zipid.mkdir(parents=True)
    with zipfile.ZipFile(zipid / "delivery.zip", "w") as archive:
        link = zipfile.ZipInfo(f"export/{NAME.replace(' ', '_')}_{BORN}.csv")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16  # a symbolic link: refused, quoted
        archive.writestr(link, "/etc/passwd")


def test_planted_sentences_never_reach_a_release(home: Path) -> None:
    shutil.copytree(FIXTURES / "tiny" / "inbox", home / "inbox")
    _consortium(home)
    _deliver(home)
    release = Path(night("2026-11-20")["path"])

    for cell in _cells(release / "marts.duckdb"):
        assert not (isinstance(cell, str) and (NAME in cell or BORN in cell)), cell
    # The planted fields really were quarantined and reported (else the scan proves nothing).
    con = duckdb.connect(str(release / "marts.duckdb"), read_only=True)
    try:
        reported = con.execute(
            "SELECT site_id, rule_id, n_records, example_message FROM fct_quarantine "
            "WHERE site_id IN ('longid', 'zipid') ORDER BY site_id"
        ).fetchall()
    finally:
        con.close()
    assert [(site, rule, n) for site, rule, n, _ in reported] == [
        ("longid", "row.unknown_measure", 1),
        ("zipid", "archive.symlink", 1),
    ]
    assert all(message for *_, message in reported)  # a message is still there, just safe
    for path in sorted(p for p in release.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for planted in (NAME, NAME.replace(" ", "_"), BORN, SENTENCE):
            assert planted.encode() not in data, (path.relative_to(release), planted)
