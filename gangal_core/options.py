"""Typer commands derived from the option models of :mod:`gangal_core.config`.

A command's options are declared once, as the fields of its pydantic model.  This module
turns the fields into the command's typer signature (flag names, short aliases, defaults,
help, choices, help panels), which typer reads from the callback's ``__signature__``, and
hands the options the user typed back to the model (:func:`gangal_core.config.resolve_config`),
so a ``--config`` file fills in only what was not typed.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

from gangal_core.config import PANELS, RUN, CommandConfig, Flag, resolve_config

__all__ = ["OptionsCommand", "OptionsGroup", "command_signature", "derive_command", "typed_options"]

#: The longest ``<a|b|c>`` listed in the type column of ``--help``: wider, it squeezes the help text.
MAX_CHOICES_WIDTH = 22

CONFIG_PARAMETER = inspect.Parameter(
    "config",
    inspect.Parameter.KEYWORD_ONLY,
    default=None,
    annotation=Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="TOML file of options; flags given here override it.",
            show_default=False,
            rich_help_panel=RUN,
        ),
    ],
)


class _HelpAsSwitch:
    """``--help`` shown as a switch (no ``<bool>``), in the panel of the options listed last."""

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            last = self.params[-1] if self.params else None  # type: ignore[attr-defined]
            option.rich_help_panel, option.metavar = getattr(last, "rich_help_panel", None), ""
        return option


class OptionsCommand(_HelpAsSwitch, typer.core.TyperCommand):
    """A gangal command: its ``--help`` sits with the run options (``--config`` is last)."""


class OptionsGroup(_HelpAsSwitch, typer.core.TyperGroup):
    """The ``gangal`` group, with the same ``--help``, and typer's completion options as switches too."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if param.name in ("install_completion", "show_completion") and getattr(param, "is_flag", False):
                param.metavar = ""  # typer's own options: no "<bool>" column
        return params


def _flag(name: str, field: FieldInfo) -> Flag:
    flag = next((m for m in field.metadata if isinstance(m, Flag)), None)
    if flag is None:  # a programming error, caught by any test that builds the CLI
        raise TypeError(f"option {name!r} has no Flag(...) in its Annotated type: which help panel?")
    return flag


def _without_none(annotation: Any) -> Any:
    """``int`` for ``int | None``: whether None is allowed is the model's business."""
    if get_origin(annotation) in (Union, types.UnionType):
        rest = [a for a in get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _choices(kind: Any) -> tuple[list[str], Callable[[Any], Any]] | None:
    """The words a choice option takes and a lookup from word to value, or None if it is no choice.

    An enum looks up through itself, so an alias its ``_missing_`` knows (``bfloat16``) is taken.
    """
    if isinstance(kind, type) and issubclass(kind, Enum):
        return [str(c.value) for c in kind], kind
    if get_origin(kind) is Literal:
        by_word = {str(v): v for v in get_args(kind)}
        return list(by_word), lambda word: by_word[str(word)]
    return None


def _choice_parser(words: list[str], lookup: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        try:
            return lookup(value.value if isinstance(value, Enum) else value)
        except (KeyError, ValueError):
            # a custom error, not a ValueError: its text reaches the user without pydantic's prefix
            raise PydanticCustomError(
                "choice",
                "expected one of {expected}, found {found}",
                {"expected": ", ".join(words), "found": repr(value)},
            ) from None

    return parse


def _choice_settings(words: list[str], lookup: Callable[[Any], Any], help: str | None) -> dict[str, Any]:
    """The parser, and ``<a|b>`` in the type column; a longer list goes into the help, where it wraps."""
    settings: dict[str, Any] = {"parser": _choice_parser(words, lookup), "metavar": f"<{'|'.join(words)}>"}
    if len(settings["metavar"]) > MAX_CHOICES_WIDTH:
        settings.update(metavar="<choice>", help=f"{help or ''} One of: {', '.join(words)}.".strip())
    return settings


def _cli_type(field: FieldInfo, flag: Flag) -> tuple[Any, Any, dict[str, Any]]:
    """The typer annotation, the default shown in ``--help``, and extra ``typer.Option`` settings."""
    kind = _without_none(field.annotation)
    default = None if field.is_required() else field.default
    if isinstance(default, Enum):
        default = default.value
    if kind is bool:
        return bool, default, {"metavar": ""}  # a switch takes no value: no "<bool>" column
    choices = _choices(kind)
    if choices is not None:
        return kind, default, _choice_settings(*choices, field.description)
    if get_origin(kind) is tuple:
        if flag.comma:  # "dcgan,stackgan": the model splits it
            return str, ",".join(map(str, default or ())) or None, {}
        return list[str], None, {}  # repeatable; the model takes the list as its tuple
    return kind, default, {}


def _parameter(name: str, field: FieldInfo) -> inspect.Parameter:
    """The keyword-only typer parameter of one model field."""
    flag = _flag(name, field)
    dashed = name.replace("_", "-")
    kind, default, extra = _cli_type(field, flag)
    if kind is bool:
        declarations = [f"--{dashed}/--no-{dashed}" if flag.negatable else f"--{dashed}"]
    else:
        declarations = [f"--{dashed}"] if flag.long or not flag.short else []
        declarations += [flag.short] if flag.short else []
    if default is None:
        kind, extra = kind | None, {**extra, "show_default": False}
    extra.setdefault("help", field.description)
    option = typer.Option(*declarations, rich_help_panel=flag.panel, **extra)
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Annotated[kind, option]
    )


def command_signature(model: type[CommandConfig]) -> inspect.Signature:
    """``(ctx, *, <one option per field, grouped by help panel>, config)`` for typer.

    Within a panel the command's own options come first, then the shared run options.
    """
    own = set(vars(model).get("__annotations__", {}))
    fields = sorted(
        model.model_fields.items(), key=lambda item: (PANELS.index(_flag(*item).panel), item[0] not in own)
    )
    context = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
    return inspect.Signature([context, *(_parameter(n, f) for n, f in fields), CONFIG_PARAMETER])


def typed_options(ctx: typer.Context, values: dict[str, Any]) -> dict[str, Any]:
    """The options the user actually typed (not defaults), for config-file merging."""
    typed = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)
        # compare by name: typer may run its own bundled copy of click, whose enum differs
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            typed[name] = tuple(value) if isinstance(value, list) else value
    return typed


def derive_command(model: type[CommandConfig], run: Callable[[Any], Any]) -> Callable[..., Any]:
    """A typer callback with ``model``'s fields as options, that validates them and calls ``run(cfg)``.

    ``run``'s name is the command's (and its ``--config`` table's), its docstring the command's help.
    """

    def command(ctx: typer.Context, *, config: Path | None = None, **values: Any) -> Any:
        typed = typed_options(ctx, values)
        return run(resolve_config(model, command_line=typed, config_file=config, section=run.__name__))

    command.__name__ = command.__qualname__ = run.__name__
    command.__doc__ = run.__doc__
    command.__signature__ = command_signature(model)  # type: ignore[attr-defined]
    return command
