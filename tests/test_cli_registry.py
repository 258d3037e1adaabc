"""``dagan``'s sub-commands are exactly the command modules in ``src/dagan/commands/``: a command module left out
of :data:`dagan.commands.COMMANDS` (unreachable from ``dagan --help``) or a registered name without a module fails
here. The other CLI tests go through the real registry, so this is the one place that pins it down."""

from __future__ import annotations

import importlib
import os
import pkgutil
import re
import subprocess
import sys
from types import ModuleType

import dagan.cli
import dagan.commands

# What makes a module in dagan/commands/ a command (see dagan/commands/__init__.py); modules that define none
# of it, such as ``arguments``, are helpers shared by the commands.
COMMAND_INTERFACE = ("NAME", "HELP", "add_arguments", "run")


def command_modules() -> dict[str, ModuleType]:
    """Every module in dagan/commands/ that defines the command interface, by its command name."""
    found: dict[str, ModuleType] = {}
    for info in pkgutil.iter_modules(dagan.commands.__path__):
        module = importlib.import_module(f"dagan.commands.{info.name}")
        defined = [attr for attr in COMMAND_INTERFACE if hasattr(module, attr)]
        if not defined:
            continue
        assert defined == list(COMMAND_INTERFACE), f"dagan.commands.{info.name} defines only {defined}"
        assert module.NAME.replace("-", "_") == info.name, f"dagan.commands.{info.name} is named {module.NAME!r}"
        found[module.NAME] = module
    return found


def test_the_helpers_are_not_commands() -> None:
    """The rule above separates the shared argument helpers from the commands (and finds the commands)."""
    modules = command_modules()
    assert "arguments" not in modules and {"animate", "demo", "train"} <= set(modules)


def test_the_parser_offers_exactly_the_command_modules() -> None:
    modules = command_modules()
    assert len(dagan.commands.COMMANDS) == len(set(dagan.commands.COMMANDS)), "a command is registered twice"
    assert set(dagan.commands.COMMANDS) == set(modules)
    parser = dagan.cli.build_parser()
    sub = next(action for action in parser._actions if action.dest == "command")
    assert set(sub.choices) == set(modules)
    for name, module in modules.items():  # each name runs its own module
        assert sub.choices[name].get_default("_run") is module.run, name


def test_help_lists_every_command() -> None:
    """``dagan --help`` from a fresh interpreter, as a user sees it: one row per command module."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-m", "dagan.cli", "--help"], capture_output=True, text=True,
                          timeout=120, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^ {4}([a-z][a-z-]*)(?:\s|$)", proc.stdout, flags=re.MULTILINE)
    assert sorted(listed) == sorted(command_modules())
