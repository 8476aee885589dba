"""The consortium file is validated on load; errors name file, site and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ingestion.config_errors import ConfigError
from ingestion.consortium import load_consortium

FIXTURE = Path(__file__).parent / "fixtures" / "tiny" / "consortium.yml"


def _write(tmp_path: Path, mutate) -> Path:
    doc = yaml.safe_load(FIXTURE.read_text())
    mutate(doc)
    path = tmp_path / "consortium.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_fixture_loads() -> None:
    consortium = load_consortium(FIXTURE)
    assert sorted(consortium.sites) == ["alpha", "beta"]
    alpha = consortium.site("alpha")
    assert alpha.forms[0].item_columns(3) == ["wai_1", "wai_2", "wai_3"]
    assert alpha.session_event_pattern.match("session_12_arm_1").group(1) == "12"


@pytest.mark.parametrize(
    ("mutate", "key", "problem"),
    [
        (lambda d: d["sites"][0].update(site_id="../evil"), "sites[0].site_id", "safe folder"),
        (lambda d: d["sites"][0].update(format="xlsx"), "sites.alpha.format", "one of"),
        (lambda d: d["sites"][0]["columns"].pop("event"), "sites.alpha.columns.event", "non-empty"),
        (
            lambda d: d["sites"][0]["forms"][0].update(instrument="wai_xx"),
            "sites.alpha.forms[0].instrument",
            "not in the instrument registry",
        ),
        (
            lambda d: d["sites"][0]["forms"][0].update(rater_role="observer"),
            "sites.alpha.forms[0].rater_role",
            "no 'observer' form",
        ),
        (
            lambda d: d["sites"][0]["forms"][0].update(item_column_template="wai_x"),
            "sites.alpha.forms[0].item_column_template",
            "{n}",
        ),
        (
            lambda d: d["sites"][0].update(primary_alliance="phq9"),
            "sites.alpha.primary_alliance",
            "not an alliance",
        ),
        (
            lambda d: d["sites"][0].update(session_event_pattern="(a)(b)"),
            "sites.alpha.session_event_pattern",
            "exactly one group",
        ),
        (lambda d: d["sites"].append(dict(d["sites"][0])), "sites.alpha", "listed twice"),
        # Globs select inside the site's inbox only (issue 12): never a parent or an absolute.
        (
            lambda d: d["sites"][0].update(file_glob="../beta/*.csv"),
            "sites.alpha.file_glob",
            "inside the site's inbox",
        ),
        (
            lambda d: d["sites"][0].update(file_glob="/etc/*"),
            "sites.alpha.file_glob",
            "inside the site's inbox",
        ),
        (
            lambda d: d["sites"][0].update(file_glob="exports/../../../secrets/*.key"),
            "sites.alpha.file_glob",
            "inside the site's inbox",
        ),
        (
            lambda d: d["sites"][0].update(
                withdrawals={"file_glob": "../../secrets/*", "client_code_column": "code"}
            ),
            "sites.alpha.withdrawals.file_glob",
            "inside the site's inbox",
        ),
        (
            lambda d: d["sites"][0].update(redcap={"data_dictionary_glob": "/tmp/dict*.csv"}),
            "sites.alpha.redcap.data_dictionary_glob",
            "inside the site's inbox",
        ),
    ],
)
def test_invalid_config_names_site_and_key(tmp_path: Path, mutate, key: str, problem: str) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_consortium(path)
    assert err.value.key == key
    assert problem in err.value.problem
    assert str(path) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_consortium(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("mutate", "key", "hint"),
    [
        (lambda d: d.update(relase={"calendar_dates": True}), "relase", "`release`"),
        (
            lambda d: d["sites"][0].update(max_retraction_fracton=0.5),
            "sites.alpha.max_retraction_fracton",
            "`max_retraction_fraction`",
        ),
        (
            lambda d: d["sites"][0].update(redcap={"accept_unverifed": True}),
            "sites.alpha.redcap.accept_unverifed",
            "`accept_unverified`",
        ),
        (
            lambda d: d["sites"][0]["forms"][0].update(rater_rol="client"),
            "sites.alpha.forms[0].rater_rol",
            "`rater_role`",
        ),
        (
            lambda d: d["sites"][0]["columns"].update(client_cod="x"),
            "sites.alpha.columns.client_cod",
            "`client_code`",
        ),
        (
            lambda d: d["sites"][0].update(arrival={"quiet_period": 60}),
            "sites.alpha.arrival.quiet_period",
            "`quiet_period_seconds`",
        ),
        (
            lambda d: d["sites"][0].update(withdrawals={"file_glob": "w*.csv", "client_code": "c"}),
            "sites.alpha.withdrawals.client_code",
            "`client_code_column`",
        ),
    ],
)
def test_misspelt_key_is_an_error_naming_the_nearest_key(
    tmp_path: Path, mutate, key: str, hint: str
) -> None:
    """A misspelt key used to be ignored, dropping the setting without a word (issue 11)."""
    with pytest.raises(ConfigError) as caught:
        load_consortium(_write(tmp_path, mutate))
    text = str(caught.value)
    assert "consortium.yml" in text and key in text
    assert f"is not a known key; did you mean {hint}?" in text


def test_key_with_no_near_match_lists_the_known_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, lambda d: d["sites"][0].update(shoe_size=42))
    known = r"sites\.alpha\.shoe_size.*is not a known key; \(known: "
    with pytest.raises(ConfigError, match=known):
        load_consortium(path)


def test_zip_site_without_a_pattern_reads_its_zips(tmp_path: Path) -> None:
    """The default pattern follows the format: a zip site's default was '*.csv', so every zip
    it delivered was refused as file.unsupported_type."""

    def to_zip(doc: dict) -> None:
        doc["sites"][0].update(format="zip", zip={"format": "redcap_csv"})

    site = load_consortium(_write(tmp_path, to_zip)).site("alpha")
    assert (site.file_glob, site.zip.member_glob) == ("*.zip", "*.csv")


def test_one_sites_bad_configuration_does_not_stop_the_others(tiny_home: Path) -> None:
    """Issue 11: a misspelt key in beta's section fails beta's ingest with an error naming the
    file, site, key and nearest valid key, while alpha's deliveries are ingested as usual."""
    from ingestion.ingest import ingest_site
    from warehouse.pipeline import site_ids

    config = tiny_home / "consortium.yml"
    doc = yaml.safe_load(config.read_text())
    doc["sites"][1]["primary_outcom"] = doc["sites"][1].pop("primary_outcome")
    config.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ConfigError, match="sites.beta.primary_outcom"):
        load_consortium(config)  # strict: what the build and release read
    assert site_ids() == ["alpha", "beta"]  # both mapped: beta fails on its own
    with pytest.raises(ConfigError) as raised:
        ingest_site("beta", "2026-11-20")
    message = str(raised.value)
    assert str(config) in message and "sites.beta.primary_outcom" in message
    assert "did you mean `primary_outcome`" in message
    alpha = ingest_site("alpha", "2026-11-20")
    # alpha's export: 15 rows, each with a WAI-SR and a PHQ-9 (tests/test_end_to_end.py).
    assert alpha.events_written == 30
