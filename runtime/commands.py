"""How the ``vitrina`` command is assembled from the packages that are installed.

Each package registers its own subcommands through the entry-point group
``vitrina.commands`` (declared in ``pyproject.toml``), the way pytest discovers
its plugins: the device core never imports export, the publisher tools or the
kiosk. An entry point names a :class:`CommandPlugin`. A plugin whose
dependencies are missing is not listed in ``vitrina --help``; running one of its
commands says which extra to install and exits 2.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

ENTRY_POINT_GROUP = "vitrina.commands"


@dataclass(frozen=True)
class CommandPlugin:
    """One package's subcommands.

    Attributes:
        name: the plugin's name, as in its entry point.
        commands: the command paths it adds, e.g. ``("build",)`` or ``("bench kiosk",)``;
            a path may end in an option (``"eval --sweep"``) when the plugin extends
            another plugin's command.
        register: adds the commands to a :class:`Commands`.
        requires: top-level modules that must be importable for the commands to run.
        extra: the ``vitrina[extra]`` that installs ``requires``, named in the error.
        order: plugins register in ascending order (a plugin that extends another's
            command registers after it).
    """

    name: str
    commands: tuple[str, ...]
    register: Callable[[Commands], None]
    requires: tuple[str, ...] = ()
    extra: str | None = None
    order: int = 100

    def missing(self) -> tuple[str, ...]:
        """The modules of ``requires`` that cannot be imported here."""
        return tuple(m for m in self.requires if not _importable(m))


class Commands:
    """The parser under construction, as plugins see it.

    ``add`` makes a top-level command, ``add_to`` a command inside a group such as
    ``bench``, and ``get`` returns an existing command's parser so a plugin can
    add options to it.
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self._sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
        self._groups: dict[str, argparse._SubParsersAction] = {}

    def add(self, name: str, *, help: str) -> argparse.ArgumentParser:  # noqa: A002 - argparse's own name
        """A new top-level command ``vitrina NAME``."""
        return self._sub.add_parser(name, help=help, description=help)

    def group(self, name: str, *, help: str) -> argparse._SubParsersAction:  # noqa: A002
        """The subcommands of the group ``vitrina NAME …``, created on first use."""
        if name not in self._groups:
            p = self.add(name, help=help)
            self._groups[name] = p.add_subparsers(
                dest=f"{name}_command", required=True, metavar=f"{name.upper()}_COMMAND"
            )
        return self._groups[name]

    def add_to(self, group: str, name: str, *, help: str) -> argparse.ArgumentParser:  # noqa: A002
        """A new command ``vitrina GROUP NAME``; the group must exist."""
        if group not in self._groups:
            raise ValueError(f"no command group {group!r}; register its plugin first")
        return self._groups[group].add_parser(name, help=help, description=help)

    def get(self, name: str) -> argparse.ArgumentParser | None:
        """The parser of the top-level command NAME, or None."""
        return self._sub.choices.get(name)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a broken install, or a finder that refuses the module
        return False


@dataclass(frozen=True)
class Unavailable:
    """A command whose plugin is installed but whose dependencies are not."""

    command: str
    plugin: str
    extra: str | None
    missing: tuple[str, ...]

    def message(self) -> str:
        install = f"pip install 'vitrina[{self.extra}]'" if self.extra else "its dependencies"
        return f"`vitrina {self.command}` needs {', '.join(self.missing)}, which is not installed here: {install}"

    def matches(self, argv: Sequence[str]) -> bool:
        """True when argv runs this command (its words in order, options anywhere after)."""
        words = self.command.split()
        positional = [w for w in words if not w.startswith("-")]
        options = [w for w in words if w.startswith("-")]
        return list(argv[: len(positional)]) == positional and all(o in argv for o in options)


def discover() -> list[CommandPlugin]:
    """Every plugin of the entry-point group that loads here, in registration order.

    A plugin whose own module cannot be imported (its package is not installed
    on this device) is left out, like one whose dependencies are missing.
    """
    plugins = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = ep.load()
        except ImportError:
            continue
        if not isinstance(plugin, CommandPlugin):
            raise TypeError(f"entry point {ep.name} = {ep.value} is not a CommandPlugin")
        plugins.append(plugin)
    return sorted(plugins, key=lambda p: (p.order, p.name))


def assemble(parser: argparse.ArgumentParser, plugins: Sequence[CommandPlugin]) -> tuple[Commands, list[Unavailable]]:
    """Register the plugins that can run here; list the commands of those that cannot."""
    commands = Commands(parser)
    unavailable: list[Unavailable] = []
    for plugin in plugins:
        missing = plugin.missing()
        if missing:
            unavailable += [Unavailable(c, plugin.name, plugin.extra, missing) for c in plugin.commands]
            continue
        plugin.register(commands)
    return commands, unavailable


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def bounded_int(high: int, *, why: str) -> Callable[[str], int]:
    """argparse type: a whole number from 1 to ``high``; ``why`` names the bound in the error."""

    def parse(text: str) -> int:
        value = positive_int(text)
        if value > high:
            raise argparse.ArgumentTypeError(f"must be <= {high} ({why}), got {value}")
        return value

    parse.__name__ = f"int in [1, {high}]"  # argparse names the type so in its other messages
    return parse
