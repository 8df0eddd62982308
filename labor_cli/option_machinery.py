"""How options are declared and read: the machinery behind labor_cli/options.py's declarations.

A command's options are a dataclass whose fields are declared with :func:`option`; this module
turns such a declaration into what the rest of labor sees:

- :func:`declared`: a command's options, a nested group's flattened (labor_cli/cli.py makes the
  typer options from them);
- :class:`OptionGroup`: the base of every options dataclass; each checks its own values once, when
  it is made (the declared minimums and the group's :meth:`OptionGroup.check`), whether the
  command line, a file or a caller in the same process made it;
- :func:`values_from_file`: a ``--config`` file's values, checked against the declarations;
- :func:`stored_config`, :func:`stored_defaults`: what an artifact records of how it was made.

This module imports neither torch nor typer: ``--help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from labor_cli.errors import LaborUsageError

REQUIRED = dataclasses.MISSING  # an option without a default: the command line must give it


@dataclass(frozen=True)
class OptionSpec:
    """How one dataclass field is offered and recorded (the field's ``metadata["option"]``)."""

    help: str
    flags: tuple[str, ...] = ()  # () means --field-name
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    parse: Callable[[str, str], Any] | None = None  # (text, flag) -> value, for text from the command line or a file
    min: int | None = None  # the least value (shown in --help); other rules are the group's check()
    case_sensitive: bool = True
    commands: tuple[str, ...] = ()  # () means every command whose options hold the field
    in_file: bool = True  # may a --config file set it
    stored: bool = True  # recorded in the artifact's config
    stored_as: str | None = None  # its key there, where that differs from the field's name
    argument: bool = False  # positional, not an --option

    def flags_of(self, name: str) -> tuple[str, ...]:
        """The flags of the field ``name``: the declared ones, or --name-with-hyphens."""
        return self.flags or (f"--{name.replace('_', '-')}",)

    def out_of_range(self, value: Any) -> str | None:
        """What is wrong with ``value`` against the declared minimum, or None."""
        if self.min is not None and value is not None and value < self.min:
            return f"must be at least {self.min}"
        return None


def option(*flags: str, default: Any = REQUIRED, help: str, **details: Any) -> Any:
    """A dataclass field declared as a command option (see OptionSpec for ``details``).

    A required option comes from the command line only, so never from a file."""
    spec = OptionSpec(help=help, flags=flags, **details)
    if default is REQUIRED:
        return field(metadata={"option": dataclasses.replace(spec, in_file=False)})
    return field(default=default, metadata={"option": spec})


def group(options_class: type) -> Any:
    """A dataclass field holding a nested group of options (``train``: a TrainConfig)."""
    return field(default_factory=options_class, metadata={"group": True})


def parse_size(text: str, flag: str) -> tuple[int, int]:
    """'1024x512' -> (1024, 512) as (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LaborUsageError(f"{flag} {text!r}: expected WIDTHxHEIGHT, e.g. 1024x512") from None
    if width <= 0 or height <= 0:
        raise LaborUsageError(f"{flag} {text!r}: width and height must be positive")
    return width, height


class OptionGroup:
    """The base of every options dataclass: made, it checks its own values once (a nested group
    has checked its own when it was made), so a stage gets values already checked."""

    COMMAND: ClassVar[str] = ""  # the command whose options these are ("data toy"); "" for a nested group

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            spec = f.metadata.get("option")
            value = getattr(self, f.name)
            problem = spec.out_of_range(value) if spec is not None else None
            if problem:
                flag = spec.flags_of(f.name)[0].split("/")[0]
                raise LaborUsageError(f"{flag} {value}: {problem}")
        self.check()

    def check(self) -> None:
        """The group's rules beyond each option's minimum (one-line usage errors); none here."""


# --- reading the declarations -----------------------------------------------------------------


@dataclass(frozen=True)
class Declared:
    """One option of one command, its group flattened: the unit the command line and files see."""

    name: str  # the field's name: the command-line parameter and the --config key
    spec: OptionSpec
    type: Any  # the field's type
    default: Any  # REQUIRED if none

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def flags(self) -> tuple[str, ...]:
        return self.spec.flags_of(self.name)

    @property
    def flag(self) -> str:
        """The flag a message names: --iters, --no-hflip's --hflip."""
        return self.flags[0].split("/")[0]

    @property
    def value_type(self) -> Any:
        """The type without Optional: int for Optional[int]."""
        arguments = [a for a in typing.get_args(self.type) if a is not type(None)]
        return arguments[0] if typing.get_origin(self.type) is typing.Union and len(arguments) == 1 else self.type


def declared(options_class: type, command: str | None = None) -> list[Declared]:
    """The options of ``command`` (default: the class's) held by ``options_class``, in
    declaration order, a group's after the class's own. Fields without an option
    (TrainConfig.betas) are left out."""
    command = command or options_class.COMMAND
    hints = typing.get_type_hints(options_class)
    out: list[Declared] = []
    groups: list[Declared] = []
    for f in dataclasses.fields(options_class):
        if f.metadata.get("group"):
            groups += declared(hints[f.name], command)
            continue
        spec = f.metadata.get("option")
        if spec is None or (spec.commands and command not in spec.commands):
            continue
        out.append(Declared(f.name, spec, hints[f.name], f.default))
    out += groups
    names = [d.name for d in out]
    assert len(names) == len(set(names)), f"{command}: an option name is declared twice"
    return out


def build(options_class: type, values: dict[str, Any], command: str | None = None) -> Any:
    """An options dataclass from flat values (groups filled from their fields' names); an
    option left out of ``values`` keeps its declared default. Each group checks itself as it is made."""
    command = command or options_class.COMMAND
    hints = typing.get_type_hints(options_class)
    kwargs = {}
    for f in dataclasses.fields(options_class):
        if f.metadata.get("group"):
            kwargs[f.name] = build(hints[f.name], values, command)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return options_class(**kwargs)


def check_value(option: Declared, value: Any, where: str) -> Any:
    """A value from a file, parsed and checked against the declaration; ``where`` (the file and
    the key) begins every message."""
    if option.spec.parse is not None and isinstance(value, str):
        try:
            return option.spec.parse(value, option.flag)
        except LaborUsageError as exc:
            raise LaborUsageError(f"{where}: {exc}") from None
    if option.spec.choices and value not in option.spec.choices:
        raise LaborUsageError(f"{where} = {value!r}: choose one of {', '.join(option.spec.choices)}")
    kind = option.value_type
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if not isinstance(kind, type) or not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LaborUsageError(f"{where} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    problem = option.spec.out_of_range(value)
    if problem:
        raise LaborUsageError(f"{where} = {value!r}: {problem}")
    return value


def values_from_file(config_file: Path, options_class: type) -> dict[str, Any]:
    """The option values of a --config TOML file (or preset) for ``options_class``'s command,
    checked: every key must be an option of the command that a file may set."""
    from labor_cli.presets import read_config_file

    path, values = read_config_file(config_file)
    command = options_class.COMMAND
    options = {d.name: d for d in declared(options_class)}
    unknown = sorted(key for key in values if key not in options)
    if unknown:
        raise LaborUsageError(f"{path}: {', '.join(unknown)}: not an option of labor {command}")
    fixed = sorted(key for key in values if not options[key].spec.in_file)
    if fixed:
        flags = ", ".join(options[key].flag for key in fixed)
        raise LaborUsageError(
            f"{path}: {', '.join(fixed)}: not settable from a file (give {flags} on the command line)"
        )
    return {key: check_value(options[key], value, f"{path}: {key}") for key, value in values.items()}


# --- what an artifact records -----------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready value: paths as text, tuples as lists, groups as dicts."""
    if dataclasses.is_dataclass(value):
        return stored_config(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def stored_config(options: Any, **facts: Any) -> dict:
    """The config an artifact records: every field whose option is marked stored (and every
    field that is no option, e.g. TrainConfig.betas), under its stored name, as JSON values.
    ``facts`` replace what an option resolved to (device auto -> cuda) and add what is no option
    (the stage, the class set a checkpoint gave)."""
    config = {}
    for f in dataclasses.fields(options):
        spec = f.metadata.get("option")
        if spec is None or spec.stored:
            key = spec.stored_as if spec is not None and spec.stored_as else f.name
            config[key] = plain(getattr(options, f.name))
    config.update({key: plain(value) for key, value in facts.items()})
    return config


def stored_defaults(options_class: type) -> dict:
    """What the stored config holds for every stored option that has a default, as JSON values:
    what an artifact made before an option existed is taken to have run with (a new option's
    default keeps the earlier behaviour)."""
    hints = typing.get_type_hints(options_class)
    defaults = {}
    for f in dataclasses.fields(options_class):
        spec = f.metadata.get("option")
        if f.metadata.get("group"):
            defaults[f.name] = stored_config(hints[f.name]())
        elif spec is not None and spec.stored and f.default is not REQUIRED:
            defaults[spec.stored_as or f.name] = plain(f.default)
    return json.loads(json.dumps(defaults))
