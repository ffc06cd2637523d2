"""gangal's built-in network architectures, registered through the same hooks a plugin uses."""

from __future__ import annotations

from gangal_core.hookspecs import hookimpl

from .networks import ConvCritic, ConvEmulator


@hookimpl
def register_emulators(register):
    register(ConvEmulator)


@hookimpl
def register_critics(register):
    register(ConvCritic)
