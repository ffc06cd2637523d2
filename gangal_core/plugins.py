"""Finding, loading and listing plugins.

Plugins are modules named by entry points in the group ``gangal``.  Each is loaded
once, lazily, the first time gangal needs the registry.  A plugin that fails to
import, implements a hook that does not exist, raises inside a hook, or registers
something invalid costs one warning naming its distribution and the error; every
other plugin keeps working.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from gangal_core import hookspecs
from gangal_core.errors import PluginError
from gangal_core.simulation.simulator import Simulator, validate_simulator_class

__all__ = [
    "ALLOW_ENV",
    "KINDS",
    "PluginWarning",
    "RegisteredThing",
    "Registry",
    "allowed_plugins",
    "build_registry",
    "describe_simulator",
    "get_registry",
]

ENTRY_POINT_GROUP = "gangal"
ALLOW_ENV = "GANGAL_PLUGINS"  # comma-separated third-party plugins (entry point or distribution) to load
# hook name -> kind of thing it registers
KINDS = {
    "register_simulators": "simulator",
    "register_emulators": "emulator",
    "register_critics": "critic",
    "register_data_sources": "data_source",
    "register_refiners": "refiner",
    "register_evaluators": "evaluator",
}


# kinds registered as one class (or instance) carrying its own ``name``; the others as (name, factory)
CLASS_KINDS = {"simulator": "Simulator", "emulator": "Emulator", "critic": "Critic"}


def _validate_class(kind: str, obj: object) -> list[str]:
    if kind == "simulator":
        return validate_simulator_class(obj)
    from gangal_core.calibration.networks import Critic, Emulator, validate_network_class

    return validate_network_class(obj, Emulator if kind == "emulator" else Critic)


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered something invalid."""


@dataclass(frozen=True)
class RegisteredThing:
    """One registered simulator, data source, refiner or evaluator."""

    name: str
    kind: str
    obj: object
    plugin: str
    distribution: str
    version: str


@dataclass
class Registry:
    """Everything the installed plugins registered, by kind and name."""

    things: dict[str, dict[str, RegisteredThing]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS.values()}
    )
    plugin_manager: pluggy.PluginManager | None = None

    def all(self) -> list[RegisteredThing]:
        """Every registered thing, sorted by kind then name."""
        return [t for kind in sorted(self.things) for _, t in sorted(self.things[kind].items())]

    def get(self, kind: str, name: str) -> RegisteredThing:
        """Look a thing up, with an error listing the choices when it is not there."""
        table = self.things[kind]
        if name not in table:
            choices = ", ".join(sorted(table)) or "none installed"
            raise PluginError(
                f"No {kind.replace('_', ' ')} named {name!r} is registered. Available: {choices}."
            )
        return table[name]

    def simulator(self, name: str) -> Simulator:
        """Instantiate the simulator registered under ``name``, or named by ``FILE.py:Class``.

        ``path/to/mysim.py:ClassName`` and ``package.module:ClassName`` load a Simulator
        subclass that is not installed as a plugin (:func:`load_simulator_class`).
        """
        if ":" in name:
            cls = load_simulator_class(name)
            try:
                return cls()
            except Exception as exc:
                raise PluginError(
                    f"--simulator {name}: {cls.__name__}() failed: {type(exc).__name__}: {exc}"
                ) from exc
        thing = self.get("simulator", name)
        obj = thing.obj
        try:
            return obj() if isinstance(obj, type) else obj
        except Exception as exc:  # a plugin's constructor failing is the plugin's fault
            raise PluginError(
                f"Simulator {name!r} from {thing.distribution} failed to start: {type(exc).__name__}: {exc}"
            ) from exc


def load_simulator_class(reference: str) -> type[Simulator]:
    """The Simulator subclass ``path/to/mysim.py:ClassName`` or ``package.module:ClassName`` names.

    A physicist's own simulator runs without packaging it as a plugin.  Errors name the file or
    module and the class: a missing file, a module that fails to import (with its error), no
    such class (with the Simulator subclasses it does hold), or a class that is not a valid
    Simulator.
    """
    import importlib
    import importlib.util
    import sys

    where, _, class_name = reference.rpartition(":")
    label = f"--simulator {reference}"
    if not where or not class_name.isidentifier():
        raise PluginError(f"{label}: expected FILE.py:ClassName or package.module:ClassName.")
    try:
        if where.endswith(".py"):
            path = Path(where).expanduser()
            if not path.is_file():
                raise PluginError(f"{label}: no such file {path}.")
            module_name = f"gangal_user_{path.stem}_{abs(hash(str(path.resolve())))}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look the module up
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except PluginError:
        raise
    except Exception as exc:  # the user's code failed to import: say where and why
        raise PluginError(f"{label}: importing {where} failed: {type(exc).__name__}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        found = [k for k, v in sorted(vars(module).items()) if _is_simulator_class(v)]
        listed = f"; its Simulator classes are {', '.join(found)}." if found else "."
        raise PluginError(f"{label}: {where} has no class {class_name!r}{listed}")
    problems = validate_simulator_class(cls)
    if problems:
        raise PluginError(f"{label}: {class_name} is not a valid gangal Simulator: {'; '.join(problems)}.")
    return cls


def describe_simulator(name: str, *, registry: Registry | None = None) -> dict[str, Any]:
    """What a simulator declares, as ``gangal plugins --simulator NAME`` shows it.

    Parameters
    ----------
    name : str
        A registered simulator's name, or ``path/to/mysim.py:ClassName``.
    registry : Registry, optional
        Where to look it up (default: the installed plugins).

    Returns
    -------
    dict
        ``name``, ``kind``, ``distribution``, ``version``, ``summary`` (the first line of its
        docstring), ``image_shape``, ``parameters`` (``name``, ``low``, ``high``, ``unit``,
        ``description`` and ``reference_truth``, ``{"mean", "std"}`` or None, of each) and
        ``reference_truth`` (``{name: [mean, std]}`` or None): JSON-able values only.

    Raises
    ------
    PluginError
        No simulator of that name, listing the registered ones.
    """
    registry = registry or get_registry()
    if ":" in name:
        obj: Any = load_simulator_class(name)
        distribution, version = "(a file or module, not a plugin)", ""
    else:
        table = registry.things["simulator"]
        if name not in table:
            raise PluginError(
                f"--simulator: expected one of {', '.join(sorted(table)) or 'none installed'} "
                f"(or path/to/mysim.py:ClassName), found {name!r}."
            )
        thing = table[name]
        obj, distribution, version = thing.obj, thing.distribution, thing.version
    truth = {k: [float(v) for v in pair] for k, pair in (obj.reference_truth or {}).items()}
    parameters = [
        {"name": p.name, "low": p.low, "high": p.high, "unit": p.unit, "description": p.description,
         "reference_truth": {"mean": truth[p.name][0], "std": truth[p.name][1]} if p.name in truth else None}
        for p in obj.parameters
    ]  # fmt: skip
    doc = (obj.__doc__ if isinstance(obj, type) else type(obj).__doc__) or ""
    return {"name": obj.name, "kind": "simulator", "distribution": distribution, "version": version,
            "summary": doc.strip().split("\n")[0], "image_shape": list(obj.image_shape),
            "parameters": parameters, "reference_truth": truth or None}  # fmt: skip


def _is_simulator_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Simulator) and value is not Simulator


def _warn(message: str) -> None:
    # the plugin is at fault, not a line of the caller's: point at no particular frame
    warnings.warn(message, PluginWarning, stacklevel=1)


def _distribution_of(ep: md.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "unknown distribution", ""
    return dist.metadata["Name"], dist.version


def allowed_plugins(value: str | None = None) -> list[str] | None:
    """The third-party plugins ``GANGAL_PLUGINS`` allows, or ``None`` when it allows all."""
    value = os.environ.get(ALLOW_ENV, "") if value is None else value
    names = [n.strip() for n in value.split(",") if n.strip()]
    return names or None


def _allowed(entry_points: list[md.EntryPoint], value: str) -> list[md.EntryPoint]:
    """Drop third-party plugins not named in ``GANGAL_PLUGINS`` (gangal's own always load)."""
    names = allowed_plugins(value)
    if names is None:
        return entry_points
    kept, matched = [], set()
    for ep in entry_points:
        dist = _distribution_of(ep)[0]
        hit = {ep.name, dist} & set(names)
        matched |= hit
        if dist == "gangal" or hit:
            kept.append(ep)
    unknown = [n for n in names if n not in matched and n != "gangal"]
    if unknown:
        others = sorted({ep.name for ep in entry_points if _distribution_of(ep)[0] != "gangal"})
        _warn(
            f"{ALLOW_ENV} names {', '.join(map(repr, unknown))}, which match no installed plugin "
            f"(entry point or distribution name); installed third-party plugins: "
            f"{', '.join(others) or 'none'}"
        )
    return kept


def build_registry(entry_points: list[md.EntryPoint] | None = None) -> Registry:
    """Load every plugin and collect what it registers.

    Parameters
    ----------
    entry_points : list of importlib.metadata.EntryPoint, optional
        The plugins to load; by default every entry point in the group ``gangal``.
        Either way, when the environment variable ``GANGAL_PLUGINS`` lists plugins
        (comma-separated entry-point or distribution names), third-party plugins not
        listed are left out; gangal's own always load.
    """
    if entry_points is None:
        entry_points = list(md.entry_points(group=ENTRY_POINT_GROUP))
    entry_points = _allowed(entry_points, os.environ.get(ALLOW_ENV, ""))
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    origin: dict[str, tuple[str, str]] = {}
    # gangal's own plugins first: a third party cannot take over a built-in's name
    for ep in sorted(entry_points, key=lambda e: (_distribution_of(e)[0] != "gangal", e.name)):
        dist, version = _distribution_of(ep)
        if pm.has_plugin(ep.name):
            _warn(
                f"gangal plugin {ep.name!r} from {dist} is skipped: a plugin of that name is already loaded"
            )
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:
            _warn(
                f"gangal plugin {ep.name!r} from {dist} {version} failed to load: {type(exc).__name__}: {exc}"
            )
            continue
        origin[ep.name] = (dist, version)
    _drop_unknown_hooks(pm, origin)
    registry = Registry(plugin_manager=pm)
    for hook_name, kind in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist, version = origin.get(impl.plugin_name, ("unknown distribution", ""))
            _collect(registry, impl, kind, dist, version)
    return registry


def _drop_unknown_hooks(pm: pluggy.PluginManager, origin: dict[str, tuple[str, str]]) -> None:
    """check_pending() for each plugin: a misspelled hook must not pass silently."""
    while True:
        try:
            pm.check_pending()
            return
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or "?"
            dist, version = origin.pop(name, ("unknown distribution", ""))
            _warn(f"gangal plugin {name!r} from {dist} {version} is skipped: {exc}")
            pm.unregister(exc.plugin)


def _collect(registry: Registry, impl: pluggy.HookImpl, kind: str, dist: str, version: str) -> None:
    table = registry.things[kind]
    plugin = impl.plugin_name

    def register(*args: object) -> None:
        problem = _registration_problem(kind, args, table)
        if problem:
            _warn(f"gangal plugin {plugin!r} from {dist} {version} registered an invalid {kind}: {problem}")
            return
        obj = args[0] if kind in CLASS_KINDS else args[1]
        name = obj.name if kind in CLASS_KINDS else args[0]
        table[name] = RegisteredThing(name, kind, obj, plugin, dist, version)

    try:
        impl.function(register=register)
    except Exception as exc:
        _warn(
            f"gangal plugin {plugin!r} from {dist} {version}: {impl.function.__name__} failed: "
            f"{type(exc).__name__}: {exc}"
        )


def _registration_problem(kind: str, args: tuple, table: dict[str, RegisteredThing]) -> str:
    if kind in CLASS_KINDS:
        if len(args) != 1:
            return f"register({CLASS_KINDS[kind]}Subclass) takes one argument, got {len(args)}"
        problems = _validate_class(kind, args[0])
        if problems:
            return f"{getattr(args[0], '__name__', args[0])!r}: " + "; ".join(problems)
        name = args[0].name
    else:
        if len(args) != 2 or not isinstance(args[0], str) or not args[0]:
            return f"register(name, factory) expected, got {args!r}"
        if not callable(args[1]):
            return f"{args[0]!r}: factory {args[1]!r} is not callable"
        if kind in ("refiner", "evaluator"):
            from gangal_core.chain.networks import validate_refiner_class
            from gangal_core.evaluation.evaluator import validate_evaluator_class

            validate = validate_refiner_class if kind == "refiner" else validate_evaluator_class
            problems = validate(args[1])
            if problems:
                return f"{args[0]!r}: " + "; ".join(problems)
        name = args[0]
    if name in table:
        return f"{name!r} is already registered by {table[name].distribution}"
    return ""


_lock = threading.Lock()
_registry: Registry | None = None


def get_registry() -> Registry:
    """The registry of installed plugins, loaded once on first use."""
    global _registry
    with _lock:
        if _registry is None:
            _registry = build_registry()
        return _registry
