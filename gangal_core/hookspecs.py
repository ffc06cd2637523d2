"""Hook specifications: how a plugin adds things to gangal.

Every hook *registers* through a callback; a plugin may register several things in
one hook.  Built-in simulators register through these very hooks, from entry points
in gangal's own ``pyproject.toml``, exactly as a third party would::

    from gangal_core import hookimpl

    @hookimpl
    def register_simulators(register):
        register(MySimulator)

Plugins are found through the entry-point group ``gangal``.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "gangal"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---- things that make images ---------------------------------------------------------
@hookspec
def register_simulators(register: Callable[[type], None]) -> None:
    """Register :class:`gangal_core.Simulator` subclasses.

    :param register: call ``register(SimulatorSubclass)`` once per simulator (an
        instance, such as one built by :func:`gangal_core.simulator_from_function`, is
        accepted too and is shared by every user); its ``name`` is its registry name.
        ``simulate`` may be called from several threads at once.
    """


@hookspec
def register_data_sources(register: Callable[[str, object], None]) -> None:
    """Register image data sources (real or synthetic training and evaluation sets).

    :param register: call ``register(name, factory)``; ``factory(path_or_none, **options)``
        returns the data source.
    """


@hookspec
def register_emulators(register: Callable[[type], None]) -> None:
    """Register emulator architectures: :class:`gangal_core.networks.Emulator` subclasses.

    :param register: call ``register(EmulatorSubclass)``; its ``name`` is what
        ``--emulator-arch`` selects.  Use it to give a simulator's images a network that
        suits them, say a larger emulator for a 256x256 detector.
    """


@hookspec
def register_critics(register: Callable[[type], None]) -> None:
    """Register critic architectures: :class:`gangal_core.networks.Critic` subclasses.

    :param register: call ``register(CriticSubclass)``; its ``name`` is what ``--critic-arch``
        selects.  A critic is the image encoder of the discriminator and of the Siamese network.
    """


# ---- things that transform or judge images ---------------------------------------------
@hookspec
def register_refiners(register: Callable[[str, object], None]) -> None:
    """Register refiners: networks that take a stage's images to a higher resolution.

    :param register: call ``register(name, RefinerSubclass)`` with a
        :class:`gangal_core.gan.Refiner` subclass; ``name`` is what ``--chain dcgan,NAME``
        selects.
    """


@hookspec
def register_evaluators(register: Callable[[str, object], None]) -> None:
    """Register evaluators that measure physical properties of image sets.

    :param register: call ``register(name, EvaluatorSubclass)`` with a
        :class:`gangal_core.evaluation.Evaluator` subclass; ``name`` is what
        ``gangal evaluate --evaluator NAME`` selects.
    """
