"""daemon.settings: the TOML keys of DESIGN §7, env overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.settings import ConfigError, load_settings

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("NODULED_"):
            monkeypatch.delenv(key)


def test_embedded_defaults_are_the_documented_ones() -> None:
    s = load_settings()
    assert s.scp.ae_title == "NODULED"
    assert s.scp.port == 11112
    assert s.scp.allowed_peers == ()
    assert s.scp.bind_host == "127.0.0.1"  # loopback only without configuration
    assert s.data_dir == Path("./var").resolve()
    assert s.database_url == f"sqlite:///{Path('./var').resolve() / 'index.sqlite'}"
    assert s.queue.redis_url == "" and s.queue.workers == 2
    assert s.analysis.stable_age_s == 10 and s.analysis.require_seeds is True
    assert s.destinations == () and s.pacs is None
    assert (s.http.host, s.http.port) == ("127.0.0.1", 8080)


def test_example_config_is_valid_and_matches_design_keys() -> None:
    s = load_settings(REPO / "config" / "noduled.example.toml")
    assert s.scp.ae_title == "NODULED"
    assert s.pacs is not None and s.pacs.retrieve in ("c-move", "c-get")


def test_toml_file_and_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text(
        '[scp]\nae_title = "NODE2"\nport = 11200\nallowed_peers = [{ae_title = "ORTHANC", host = "10.0.0.5"}]\n'
        '[storage]\ndata_dir = "/srv/noduled"\n'
        '[[destinations]]\nae_title = "PACS"\nhost = "10.0.0.5"\nport = 4242\n'
    )
    monkeypatch.setenv("NODULED_SCP__PORT", "11113")
    monkeypatch.setenv("NODULED_STORAGE__DATA_DIR", str(tmp_path / "data"))
    s = load_settings(cfg)
    assert s.scp.port == 11113  # environment wins
    assert s.scp.ae_title == "NODE2"  # the file's other keys in the same section survive
    assert s.scp.allowed_peers[0].ae_title == "ORTHANC" and s.scp.allowed_peers[0].host == "10.0.0.5"
    assert s.scp.bind_host == "0.0.0.0"  # peers configured: listen on the network
    assert s.data_dir == tmp_path / "data"
    assert s.destinations[0].port == 4242


def test_config_from_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "n.toml"
    cfg.write_text("[scp]\nport = 12000\n")
    monkeypatch.setenv("NODULED_CONFIG", str(cfg))
    assert load_settings().scp.port == 12000


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[scp]\nport = 70000\n", "scp.port must be 1-65535, got 70000"),
        ('[scp]\nae_title = "A_TITLE_FAR_TOO_LONG"\n', "scp.ae_title must be 1-16"),
        ("[scp]\nprot = 1\n", "scp.prot is not a known setting"),
        ("[queue]\nworkers = -1\n", "queue.workers must be 0-64, got -1"),
        ('[pacs]\nae_title = "PACS"\nhost = "h"\nport = 4242\nretrieve = "c-fetch"\n', "pacs.retrieve"),
        ('[database]\nurl = "mysql://x"\n', "database.url must be empty"),
        ('[scp]\nallowed_peers = [{ae_title = "X", host = "not-an-ip"}]\n', "must be an IP address, got 'not-an-ip'"),
        ("[scp.tls]\nenabled = true\n", "tls.cert must be set"),
        ('[analysis]\nprotocol = "lung-rads"\n', "analysis.protocol"),
        ('[analysis]\nprotocol = "lung-rads-2022"\naudit_protocol = "lung-rads-2022"\n', "audit_protocol must differ"),
        ('[registry]\nprotocol = "nlcsp"\n', "the audit applies [analysis] protocol"),
        ("[scp]\nnetwork_timeout_s = 0\n", "scp.network_timeout_s must be more than 0, got 0"),
        ("[scp]\nnetwork_timeout_s = -1\n", "scp.network_timeout_s must be more than 0, got -1"),
        ("[scp]\nmax_pdu_bytes = -1\n", "scp.max_pdu_bytes must be 0 or more, got -1"),
        ("[scp]\nassociation_request_timeout_s = 0\n", "scp.association_request_timeout_s must be more than 0"),
        ("[scp]\nmax_pending_per_address = 0\n", "scp.max_pending_per_address must be at least 1, got 0"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg)
    assert message in str(err.value)


def test_bad_environment_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NODULED_SCP__PORT", "0")
    with pytest.raises(ConfigError, match="scp.port must be 1-65535, got 0"):
        load_settings()


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[scp\nport=1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_settings(bad)


def test_protocol_defaults_to_nlcsp_and_lung_rads_with_nlcsp_audit(tmp_path: Path) -> None:
    assert (load_settings(None).analysis.protocol, load_settings(None).analysis.audit_protocol) == ("nlcsp", "")
    cfg = tmp_path / "n.toml"
    cfg.write_text('[analysis]\nprotocol = "lung-rads-2022"\naudit_protocol = "nlcsp"\n')
    a = load_settings(cfg).analysis
    assert (a.protocol, a.audit_protocol) == ("lung-rads-2022", "nlcsp")


def test_destination_storage_commitment_and_retention_keys(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from daemon.settings import ConfigError, load_settings

    path = tmp_path / "n.toml"
    path.write_text(
        "[storage]\nretention_days = 14\nhigh_water_mark_percent = 85\nlow_water_mark_percent = 70\n"
        '[[destinations]]\nae_title = "A"\nhost = "h"\nport = 1\nstorage_commitment = true\n'
        '[[destinations]]\nae_title = "B"\nhost = "h"\nport = 2\nstorage_commitment = "auto"\n'
        '[[destinations]]\nae_title = "C"\nhost = "h"\nport = 3\n'
    )
    s = load_settings(path)
    assert [d.commitment_mode for d in s.destinations] == ["required", "auto", "off"]
    assert (s.storage.retention_days, s.storage.high_water_mark_percent, s.storage.low_water_mark_percent) == (
        14,
        85,
        70,
    )
    path.write_text("[storage]\nhigh_water_mark_percent = 60\nlow_water_mark_percent = 70\n")
    with pytest.raises(
        ConfigError, match=r"low_water_mark_percent \(70\) must not exceed high_water_mark_percent \(60\)"
    ):
        load_settings(path)
    path.write_text('[[destinations]]\nae_title = "A"\nhost = "h"\nport = 1\nstorage_commitment = "sometimes"\n')
    with pytest.raises(
        ConfigError, match='destinations.0.storage_commitment must be true, false or "auto", got .sometimes.'
    ):
        load_settings(path)
