"""TOML configuration files: errors name the file and the key; a misspelt section is refused."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gangal_core import config as config_module

from .conftest import (
    CASES,
    _expect_user_error,
    _scratch,
    _settings,
    _user_error_or,
)
from .inputs import (
    COMMAND_MODELS,
    _required,
    _toml,
    _toml_string,
)

TOML_SCALARS = st.one_of(
    st.sampled_from(["run\x00.npy", "a\x00b", "\x00"]),  # NUL: a path no file system accepts
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2),
    max_leaves=5,
)


@example(command="simulate", body=("keys", {"simulator": "toy8", "out": "run\x00.npy"}), in_section=False)
@_settings(80)
@given(
    command=st.sampled_from(sorted(COMMAND_MODELS)),
    body=st.one_of(
        st.binary(max_size=120).map(lambda b: ("bytes", b)),
        st.dictionaries(
            st.one_of(
                st.sampled_from(sorted({f for m in COMMAND_MODELS.values() for f in m.model_fields})),
                st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
            ),
            TOML_VALUES,
            min_size=1,
            max_size=4,
        ).map(lambda d: ("keys", d)),
    ),
    in_section=st.booleans(),
)
def test_config_file_errors_name_the_file_and_key(tmp_path, command, body, in_section) -> None:
    CASES["TOML config"] += 1
    model = COMMAND_MODELS[command]
    path = _scratch(tmp_path) / "config.toml"
    kind, payload = body
    if kind == "bytes":
        path.write_bytes(payload)
        keys: list[str] = []
    else:
        keys = list(payload)
        lines = [f"{_toml_string(k)} = {_toml(v)}" for k, v in payload.items()]
        path.write_text((f"[{command}]\n" if in_section else "") + "\n".join(lines) + "\n", encoding="utf-8")
    resolve = functools.partial(
        config_module.resolve_config, model, command_line={}, config_file=path, section=command
    )
    cfg, error = _user_error_or(resolve, path)
    if error is not None:
        named = set(model.model_fields) | {k.replace("-", "_") for k in keys} | set(keys)
        assert kind == "bytes" or any(k in str(error) for k in named), str(error)
        return
    assert isinstance(cfg, model)
    for field in model.model_fields:  # a path the file system cannot open is no valid option
        value = getattr(cfg, field)
        assert not (isinstance(value, Path) and "\x00" in str(value)), f"{field} = {value!r} from {path}"


@pytest.mark.parametrize("command", sorted(COMMAND_MODELS))
def test_config_file_with_a_misspelt_section(tmp_path, command) -> None:
    """``[simualte]`` is neither a command nor an option: it must not be silently ignored."""
    CASES["TOML config"] += 1
    path = tmp_path / "config.toml"
    misspelt = command[:2] + command[3] + command[2] + command[4:]
    required = _required(command, tmp_path)
    path.write_text(f"{required}\n[{misspelt}]\nseed = 3\n", encoding="utf-8")
    model = COMMAND_MODELS[command]
    _expect_user_error(
        lambda: config_module.resolve_config(model, command_line={}, config_file=path, section=command),
        path,
        misspelt,
    )
