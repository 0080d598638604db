from pathlib import Path

import pytest

from bastion.errors import ConfigError
from bastion.settings import load_settings


def test_defaults_serve_https_on_loopback_8443_with_a_local_data_dir():
    settings = load_settings()
    assert settings.base_url == "https://127.0.0.1:8443"
    assert settings.data_dir == Path("var")
    assert settings.resolved_database_url == "sqlite:///var/bastion.db"
    assert settings.key_file == Path("var/master.key")


def test_environment_overrides_host_port_and_nested_keys(monkeypatch):
    monkeypatch.setenv("BASTION_HOST", "::1")
    monkeypatch.setenv("BASTION_PORT", "9443")
    monkeypatch.setenv("BASTION_HTTP__MAX_BODY_BYTES", "4096")
    settings = load_settings()
    assert (settings.host, settings.port, settings.http.max_body_bytes) == ("::1", 9443, 4096)


def test_unknown_environment_key_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("BASTION_PROT", "8443")
    with pytest.raises(ConfigError, match="BASTION_PROT: unknown setting"):
        load_settings()


def test_unknown_nested_environment_key_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("BASTION_HTTP__MAX_BODY", "10")
    with pytest.raises(ConfigError, match="BASTION_HTTP__MAX_BODY: unknown setting"):
        load_settings()


def test_bad_value_names_the_key(monkeypatch):
    monkeypatch.setenv("BASTION_PORT", "70000")
    with pytest.raises(ConfigError, match="BASTION_PORT: Input should be less than"):
        load_settings()


def test_toml_file_is_read_and_unknown_keys_in_it_are_refused(monkeypatch, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('port = 9000\n[http]\ntrusted_proxies = ["10.0.0.0/8"]\n')
    monkeypatch.setenv("BASTION_CONFIG", str(good))
    settings = load_settings()
    assert settings.port == 9000
    assert [str(n) for n in settings.http.trusted_proxies] == ["10.0.0.0/8"]

    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nmax_body = 5\n")
    monkeypatch.setenv("BASTION_CONFIG", str(bad))
    with pytest.raises(ConfigError, match=r"http\.max_body: unknown setting"):
        load_settings()


def test_environment_wins_over_the_toml_file(monkeypatch, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("port = 9000\n")
    monkeypatch.setenv("BASTION_CONFIG", str(config))
    monkeypatch.setenv("BASTION_PORT", "9001")
    assert load_settings().port == 9001


def test_missing_toml_file_is_a_config_error(monkeypatch, tmp_path):
    monkeypatch.setenv("BASTION_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="BASTION_CONFIG: no such file"):
        load_settings()


def test_prod_refuses_a_plain_http_public_url():
    with pytest.raises(ConfigError, match="public_url must be https"):
        load_settings(env="prod", public_url="http://example.com")


def test_settings_are_frozen():
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
