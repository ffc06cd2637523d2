"""Tests for gangal_core.plugins: discovery through entry points, and one warning per broken plugin."""

from __future__ import annotations

import importlib.metadata as md
import json
import warnings

import pytest
import torch
from typer.testing import CliRunner

import gangal_core.plugins as plugins_module
from gangal_core.cli import app
from gangal_core.errors import PluginError
from gangal_core.plugins import PluginWarning, Registry, build_registry, get_registry

GOOD_PLUGIN = """
    import torch
    from gangal_core import Parameter, Simulator, hookimpl

    class Blob(Simulator):
        name = "blob"
        image_shape = (1, 4, 4)
        parameters = (Parameter("a", 0.0, 1.0),)

        def simulate(self, params, *, generator):
            return params[:, :, None, None].expand(-1, 1, 4, 4).contiguous()

    def fits_folder(path=None, **options):
        return path

    @hookimpl
    def register_simulators(register):
        register(Blob)

    @hookimpl
    def register_data_sources(register):
        register("fits-folder", fits_folder)
"""

SIMULATOR_HEADER = """
    import torch
    from gangal_core import Parameter, Simulator, hookimpl

    class Ok(Simulator):
        name = "ok"
        image_shape = (1, 4, 4)
        parameters = (Parameter("a", 0.0, 1.0),)

        def simulate(self, params, *, generator):
            return torch.zeros(len(params), 1, 4, 4)
"""


def _build(entry_points: list[md.EntryPoint]) -> tuple[Registry, list[str]]:
    """Build a registry and return it with the messages of the PluginWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry = build_registry(entry_points=entry_points)
    return registry, [str(w.message) for w in caught if issubclass(w.category, PluginWarning)]


def _names(registry: Registry, kind: str = "simulator") -> set[str]:
    return set(registry.things[kind])


# ---- discovery -----------------------------------------------------------------------------
def test_builtins_are_registered_through_entry_points() -> None:
    eps = {ep.name: ep for ep in md.entry_points(group="gangal")}
    assert eps["polynomial"].value == "gangal_polynomial"
    assert eps["circle"].value == "gangal_circle"
    registry, messages = _build(list(md.entry_points(group="gangal")))
    assert messages == []
    for name in ("circle", "polynomial"):
        thing = registry.get("simulator", name)
        assert (thing.kind, thing.plugin, thing.distribution) == ("simulator", name, "gangal")
        assert thing.version == md.version("gangal")
        assert thing.obj.name == name


def test_default_registry_loads_once() -> None:
    registry = get_registry()
    assert registry is get_registry()
    assert {"circle", "polynomial"} <= _names(registry)


def test_third_party_plugin_appears_with_its_distribution(fake_plugin, builtin_entry_points) -> None:
    eps = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob", version="2.5.1")
    registry, messages = _build(builtin_entry_points + eps)
    assert messages == []
    assert _names(registry) == {"blob", "circle", "polynomial"}
    blob = registry.get("simulator", "blob")
    assert (blob.plugin, blob.distribution, blob.version) == ("gangal_blob", "gangal-blob", "2.5.1")
    source = registry.get("data_source", "fits-folder")
    assert (source.distribution, source.version) == ("gangal-blob", "2.5.1")
    assert source.obj("x") == "x"
    sim = registry.simulator("blob")
    generator = torch.Generator().manual_seed(0)
    params = sim.sample_uniform(3, generator=generator)
    assert torch.equal(sim.simulate(params, generator=generator)[:, 0, 2, 3], params[:, 0])
    kinds = [(t.kind, t.name) for t in registry.all()]
    assert kinds == sorted(kinds)


# ---- one warning per broken plugin, the others unharmed --------------------------------------
BROKEN = {
    "import_error": (
        """
        import gangal_no_such_backend
        """,
        ["failed to load", "ModuleNotFoundError", "gangal_no_such_backend"],
    ),
    "misspelled_hook": (
        SIMULATOR_HEADER
        + """
    @hookimpl
    def register_simulatorz(register):
        register(Ok)
        """,
        ["register_simulatorz"],
    ),
    "wrong_hook_argument": (
        SIMULATOR_HEADER
        + """
    @hookimpl
    def register_simulators(reg):
        reg(Ok)
        """,
        ["failed to load", "reg"],
    ),
    "hook_raises": (
        """
        from gangal_core import hookimpl

        @hookimpl
        def register_simulators(register):
            raise RuntimeError("the detector geometry file is missing")
        """,
        ["register_simulators failed", "RuntimeError", "the detector geometry file is missing"],
    ),
    "bad_image_shape": (
        SIMULATOR_HEADER
        + """
    class Flat(Ok):
        name = "flat"
        image_shape = (4, 4)

    @hookimpl
    def register_simulators(register):
        register(Flat)
        """,
        ["invalid simulator", "Flat", "image_shape", "(4, 4)"],
    ),
    "empty_parameters": (
        SIMULATOR_HEADER
        + """
    class Nothing(Ok):
        name = "nothing"
        parameters = ()

    @hookimpl
    def register_simulators(register):
        register(Nothing)
        """,
        ["invalid simulator", "Nothing", "parameters must be a non-empty tuple"],
    ),
    "abstract_simulator": (
        """
        from gangal_core import Parameter, Simulator, hookimpl

        class Unfinished(Simulator):
            name = "unfinished"
            image_shape = (1, 4, 4)
            parameters = (Parameter("a", 0.0, 1.0),)

        @hookimpl
        def register_simulators(register):
            register(Unfinished)
        """,
        ["invalid simulator", "abstract methods", "simulate"],
    ),
    "not_a_simulator": (
        """
        from gangal_core import hookimpl

        class Lookalike:
            name = "lookalike"

        @hookimpl
        def register_simulators(register):
            register(Lookalike)
        """,
        ["invalid simulator", "not a subclass of gangal_core.Simulator"],
    ),
    "duplicate_name": (
        SIMULATOR_HEADER
        + """
    class Again(Ok):
        pass

    @hookimpl
    def register_simulators(register):
        register(Ok)
        register(Again)
        """,
        ["invalid simulator", "'ok' is already registered by gangal-broken"],
    ),
    "non_callable_data_source": (
        """
        from gangal_core import hookimpl

        @hookimpl
        def register_data_sources(register):
            register("sky-survey", 42)
        """,
        ["invalid data_source", "'sky-survey'", "42 is not callable"],
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_plugin_costs_exactly_one_warning(fake_plugin, builtin_entry_points, case: str) -> None:
    source, expected = BROKEN[case]
    good = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob")
    bad = fake_plugin(f"gangal_{case}", source, distribution="gangal-broken", version="0.0.7")
    registry, messages = _build(builtin_entry_points + bad + good)
    assert len(messages) == 1, messages
    message = messages[0]
    assert f"'gangal_{case}'" in message
    assert "gangal-broken" in message
    for part in expected:
        assert part in message, (part, message)
    assert {"circle", "polynomial", "blob"} <= _names(registry)
    assert registry.get("data_source", "fits-folder").distribution == "gangal-blob"


def test_duplicate_of_a_builtin_keeps_the_builtin(fake_plugin, builtin_entry_points) -> None:
    source = (
        SIMULATOR_HEADER
        + """
    class Circle(Ok):
        name = "circle"

    @hookimpl
    def register_simulators(register):
        register(Circle)
    """
    )
    eps = fake_plugin("zz_circle", source, distribution="gangal-impostor")
    registry, messages = _build(builtin_entry_points + eps)
    assert len(messages) == 1, messages
    assert "gangal-impostor" in messages[0] and "'circle' is already registered by gangal" in messages[0]
    assert registry.get("simulator", "circle").distribution == "gangal"


def test_entry_point_name_taken_twice_is_skipped(fake_plugin, builtin_entry_points) -> None:
    eps = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob", entry_point="circle")
    registry, messages = _build(builtin_entry_points + eps)
    assert len(messages) == 1, messages
    assert "'circle'" in messages[0] and "gangal-blob" in messages[0] and "already loaded" in messages[0]
    assert "blob" not in _names(registry)
    assert registry.get("simulator", "circle").distribution == "gangal"


def test_misspelled_hook_skips_the_whole_plugin(fake_plugin) -> None:
    source = (
        SIMULATOR_HEADER
        + """
    @hookimpl
    def register_simulators(register):
        register(Ok)

    @hookimpl
    def register_refinerz(register):
        pass
    """
    )
    registry, messages = _build(fake_plugin("gangal_typo", source))
    assert len(messages) == 1 and "register_refinerz" in messages[0], messages
    assert _names(registry) == set()


def test_broken_plugin_is_an_error_under_the_test_settings(fake_plugin) -> None:
    eps = fake_plugin("gangal_raises", BROKEN["hook_raises"][0])
    with pytest.raises(PluginWarning, match="gangal-fake"):  # pyproject: error::PluginWarning
        build_registry(entry_points=eps)


def test_simulator_constructor_failure_is_a_plugin_error(fake_plugin) -> None:
    source = (
        SIMULATOR_HEADER
        + """
    class NeedsLicence(Ok):
        name = "licensed"

        def __init__(self):
            raise OSError("licence server unreachable")

    @hookimpl
    def register_simulators(register):
        register(NeedsLicence)
    """
    )
    registry, messages = _build(fake_plugin("gangal_licensed", source, distribution="gangal-licensed"))
    assert messages == []
    with pytest.raises(PluginError, match=r"'licensed' from gangal-licensed failed to start.*licence server"):
        registry.simulator("licensed")


# ---- lookups ---------------------------------------------------------------------------------
def test_get_lists_the_available_names(builtin_entry_points) -> None:
    registry, _ = _build(builtin_entry_points)
    with pytest.raises(PluginError, match=r"No simulator named 'cirle'.*Available: circle, polynomial\."):
        registry.get("simulator", "cirle")
    with pytest.raises(PluginError, match=r"No data source named 'x'.*Available: galaxyzoo, synthetic\."):
        registry.get("data_source", "x")


# ---- `gangal plugins` -------------------------------------------------------------------------
def test_cli_plugins_table() -> None:
    result = CliRunner().invoke(app, ["plugins"])
    assert result.exit_code == 0, result.output
    for word in ("circle", "polynomial", "simulator", "gangal", md.version("gangal")):
        assert word in result.stdout


def test_cli_plugins_json(fake_plugin, builtin_entry_points, monkeypatch) -> None:
    eps = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob", version="2.5.1")
    registry, _ = _build(builtin_entry_points + eps)
    monkeypatch.setattr(plugins_module, "_registry", registry)
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    by_name = {(r["kind"], r["name"]): r for r in rows}
    assert set(by_name) == {
        ("emulator", "conv"),
        ("critic", "conv"),
        ("simulator", "circle"),
        ("simulator", "polynomial"),
        ("simulator", "blob"),
        ("data_source", "fits-folder"),
        ("data_source", "galaxyzoo"),
        ("data_source", "synthetic"),
        ("refiner", "stackgan"),
        ("evaluator", "isophote"),
    }
    assert by_name["simulator", "blob"]["distribution"] == "gangal-blob"
    assert by_name["simulator", "blob"]["version"] == "2.5.1"
    assert by_name["simulator", "circle"]["distribution"] == "gangal"
    assert all({"name", "kind", "distribution", "version"} <= set(r) for r in rows)


def test_cli_plugins_json_default_registry() -> None:
    result = CliRunner().invoke(app, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    builtins = {r["name"]: r for r in rows if r["distribution"] == "gangal"}
    assert {"circle", "polynomial"} <= set(builtins)
    assert builtins["circle"]["kind"] == "simulator"
    assert builtins["circle"]["version"] == md.version("gangal")


# ---- the hooks' documentation and GANGAL_PLUGINS --------------------------------------------
def _documented_signature(fn) -> str:
    import inspect

    sig = inspect.signature(fn)  # annotations stay the strings written in hookspecs.py
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"{fn.__name__}({params}) -> {sig.return_annotation}"


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    import re
    from pathlib import Path

    from gangal_core import hookspecs

    doc = (Path(__file__).parents[1] / "docs" / "plugin-hooks.md").read_text(encoding="utf-8")
    specs = {name for name in dir(hookspecs) if name.startswith("register_")}
    assert specs == set(plugins_module.KINDS), "every hookspec registers one kind of thing"
    for name in sorted(specs):
        signature = _documented_signature(getattr(hookspecs, name))
        assert f"### `{signature}`" in doc, f"docs/plugin-hooks.md lacks the heading for {signature}"
    documented = set(re.findall(r"^### `(register_\w+)\(", doc, flags=re.M))
    assert documented == specs, f"documented hooks that do not exist: {documented - specs}"


def test_gangal_plugins_allows_only_the_listed_third_party_plugins(
    fake_plugin, builtin_entry_points, monkeypatch
) -> None:
    eps = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob", version="2.5.1")
    monkeypatch.setenv("GANGAL_PLUGINS", "someone-else")
    registry, messages = _build(builtin_entry_points + eps)
    assert _names(registry) == {"circle", "polynomial"}  # gangal's own always load
    assert len(messages) == 1 and "'someone-else'" in messages[0] and "gangal_blob" in messages[0]
    for allowed in ("gangal_blob", "gangal-blob", " gangal-blob , other-thing"):
        monkeypatch.setenv("GANGAL_PLUGINS", allowed)
        registry, messages = _build(builtin_entry_points + eps)
        assert _names(registry) == {"blob", "circle", "polynomial"}, allowed
        assert all("gangal-blob" not in m for m in messages)
    monkeypatch.setenv("GANGAL_PLUGINS", "")
    registry, messages = _build(builtin_entry_points + eps)
    assert _names(registry) == {"blob", "circle", "polynomial"} and messages == []


def test_cli_plugins_names_the_filter_in_force(monkeypatch) -> None:
    monkeypatch.setenv("GANGAL_PLUGINS", "gangal-star")
    monkeypatch.setattr(plugins_module, "_registry", None)
    result = CliRunner().invoke(app, ["plugins"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "GANGAL_PLUGINS=gangal-star" in result.output
    monkeypatch.setattr(plugins_module, "_registry", None)


# ---- `gangal plugins --simulator NAME` -----------------------------------------------------------
def test_cli_plugins_simulator_shows_ranges_units_truth_at_80_columns() -> None:
    result = CliRunner().invoke(app, ["plugins", "--simulator", "circle"], env={"COLUMNS": "80"},
                                terminal_width=80)  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = {line.split("│")[1].strip(): line for line in lines if line.startswith("│") and line[2] != " "}
    assert set(rows) == {"x0", "y0", "r", "n", "b"}
    expected = {
        "x0": ("14.8 to 21.2", "px", "18 ± 0.8", "x of the ring's centre"),
        "r": ("6 to 10", "px", "8 ± 0.5", "radius of the ring"),
        "n": ("0 to 0.35", " - ", "0.15 ± 0.05", "white-noise standard"),
    }
    for name, parts in expected.items():
        for part in parts:
            assert part in rows[name], (name, part, rows[name])
    text = " ".join(result.stdout.split())
    assert "simulator circle (gangal" in text and "1x28x28 images" in text
    assert "Noisy ring images, p = (x0, y0, r, n, b)." in text  # the docstring, without its reST quotes


def test_cli_plugins_simulator_json() -> None:
    result = CliRunner().invoke(app, ["plugins", "-s", "polynomial", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["name"], doc["kind"], doc["distribution"], doc["image_shape"]) == (
        "polynomial", "simulator", "gangal", [1, 28, 28]
    )  # fmt: skip
    by_name = {p["name"]: p for p in doc["parameters"]}
    assert list(by_name) == ["m", "x0", "c", "xsteps"]
    assert by_name["xsteps"] | {"description": ""} == {
        "name": "xsteps", "low": 7.0, "high": 11.0, "unit": "px", "description": "",
        "reference_truth": {"mean": 9.0, "std": 0.5},
    }  # fmt: skip
    assert doc["reference_truth"]["m"] == [1.5, 0.3]


def test_cli_plugins_simulator_without_truth_or_units(fake_plugin, builtin_entry_points, monkeypatch) -> None:
    eps = fake_plugin("gangal_blob", GOOD_PLUGIN, distribution="gangal-blob", version="2.5.1")
    registry, _ = _build(builtin_entry_points + eps)
    monkeypatch.setattr(plugins_module, "_registry", registry)
    result = CliRunner().invoke(app, ["plugins", "--simulator", "blob", "--json"])
    doc = json.loads(result.stdout)
    assert doc["reference_truth"] is None and doc["parameters"][0]["reference_truth"] is None
    assert (doc["distribution"], doc["version"]) == ("gangal-blob", "2.5.1")
    result = CliRunner().invoke(app, ["plugins", "--simulator", "blob"], terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "0 to 1" in result.stdout and "truth:" not in result.stdout


def test_cli_plugins_simulator_from_a_file(tmp_path) -> None:
    (tmp_path / "mysim.py").write_text(SIMULATOR_HEADER.replace("\n    ", "\n"))
    result = CliRunner().invoke(app, ["plugins", "-s", f"{tmp_path / 'mysim.py'}:Ok", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["name"] == "ok" and doc["parameters"][0]["high"] == 1.0


def test_cli_plugins_unknown_simulator_lists_the_choices() -> None:
    result = CliRunner().invoke(app, ["plugins", "--simulator", "cirle"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    text = " ".join(result.output.split())
    assert "--simulator: expected one of circle, polynomial" in text and "found 'cirle'" in text
