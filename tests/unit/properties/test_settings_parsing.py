"""Property: whatever BASTION_* environment a process starts with, ``load_settings`` answers with
a Settings object or a ConfigError naming the keys, never another exception (which the CLI would
print as a traceback instead of exit status 2 and one line).

The variable names are drawn from the real settings tree (so nested keys, sections and leaves are
all hit) plus misspellings; the values from text, numbers, booleans and JSON.
"""

from __future__ import annotations

import json
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from bastion.errors import ConfigError
from bastion.settings import (
    CONFIG_FILE_VARIABLE,
    ENV_PREFIX,
    NESTED_DELIMITER,
    Settings,
    load_settings,
)

# Environment values can hold neither NUL nor lone surrogates (the OS refuses them at putenv).
ENV_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | ENV_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ENV_TEXT, inner, max_size=3),
    max_leaves=6,
)


SECRET_NAMES = ("PASSWORD", "PIN", "KEY_BASE64", "DATABASE_URL")


def _is_complex(annotation: object) -> bool:
    """What pydantic-settings JSON-decodes from the environment: models and collections."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    origin = typing.get_origin(annotation)
    if origin in (tuple, list, dict, set, frozenset):
        return True
    return any(_is_complex(arg) for arg in typing.get_args(annotation))


def _setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()):
    """Every (path, is_complex) in the settings tree, sections included."""
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        annotation = field.annotation
        yield path, _is_complex(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _setting_paths(annotation, path)


PATHS = sorted(_setting_paths(Settings))


def _env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + NESTED_DELIMITER.join(path).upper()


@st.composite
def environment_entry(draw):
    path, is_complex = draw(st.sampled_from(PATHS))
    name = _env_name(path)
    if draw(st.integers(0, 9)) == 0:  # a typo or an unknown child key
        name += draw(st.sampled_from(["X", "_", NESTED_DELIMITER + "NOPE", NESTED_DELIMITER]))
    if is_complex:
        # Mostly JSON (what these fields take), sometimes text that is not JSON at all.
        value = draw(JSON_VALUES.map(json.dumps) | ENV_TEXT)
    else:
        value = draw(
            st.one_of(
                ENV_TEXT,
                st.integers(-(2**70), 2**70).map(str),
                st.sampled_from(["true", "false", "1", "0", "yes", "", "prod", "dev", "test"]),
                JSON_VALUES.map(json.dumps),
            )
        )
    return name, value


def _load_with(environment: dict[str, str]) -> Settings | ConfigError:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        try:
            return load_settings()
        except ConfigError as refused:  # the one allowed refusal
            return refused


@settings(max_examples=150, deadline=None)
@given(environment=st.lists(environment_entry(), max_size=5).map(dict))
def test_any_environment_yields_settings_or_a_config_error(environment):
    outcome = _load_with(environment)
    if isinstance(outcome, ConfigError):
        assert str(outcome), "a refusal must say what is wrong"
        # The message names a key, never dumps a secret value it was given.
        for name, value in environment.items():
            # Short values (ports, "prod") turn up in messages by coincidence; a secret does not.
            if any(word in name for word in SECRET_NAMES) and len(value) >= 12:
                assert value not in str(outcome)
    else:
        assert isinstance(outcome, Settings)


TOML_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30).map(
    lambda text: json.dumps(text, ensure_ascii=False)
)
TOML_VALUES = st.one_of(
    TOML_TEXT,
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.booleans().map(lambda flag: "true" if flag else "false"),
    st.lists(st.integers(-5, 70_000), max_size=3).map(str),
)
TOP_LEVEL_LEAVES = [path[0] for path, is_complex in PATHS if len(path) == 1 and not is_complex]


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.dictionaries(st.sampled_from(TOP_LEVEL_LEAVES), TOML_VALUES, max_size=4))
def test_any_well_formed_toml_file_yields_settings_or_a_config_error(tmp_path, values):
    config = tmp_path / "bastion.toml"
    config.write_text("".join(f"{key} = {value}\n" for key, value in values.items()))
    outcome = _load_with({CONFIG_FILE_VARIABLE: str(config)})
    assert isinstance(outcome, Settings | ConfigError)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=ENV_TEXT)
def test_any_config_file_text_yields_settings_or_a_config_error(tmp_path, text):
    config = tmp_path / "bastion.toml"
    config.write_text(text, encoding="utf-8")
    outcome = _load_with({CONFIG_FILE_VARIABLE: str(config)})
    assert isinstance(outcome, Settings | ConfigError)


# Escapes found by the properties above (docs/security.md, "Findings"), now fixed.
def test_malformed_json_in_a_nested_value_is_a_config_error(monkeypatch):
    monkeypatch.setenv("BASTION_HTTP__TRUSTED_PROXIES", "[")
    with pytest.raises(ConfigError, match="BASTION_HTTP__TRUSTED_PROXIES"):
        load_settings()


def test_a_malformed_toml_file_is_a_config_error(monkeypatch, tmp_path):
    config = tmp_path / "bastion.toml"
    config.write_text("port = [\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    with pytest.raises(ConfigError, match=r"bastion\.toml"):
        load_settings()
