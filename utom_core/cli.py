"""The ``utom`` command line: a click group whose commands live in ``utom_core.commands``."""

from __future__ import annotations

import logging
import sys
import warnings

import click
from rich.table import Table

from utom_core import __version__
from utom_core.console import console, stdout
from utom_core.errors import UtomError
from utom_core.plugins import get_registry


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    console.print(f"[yellow]warning:[/] {message}", markup=True, soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="utom")
def cli() -> None:
    """utom: unpaired, content-preserving transformation of microscopy images (UTOM)."""


@cli.command("tasks")
def tasks_command() -> None:
    """List the registered tasks (built in and from installed plugins)."""
    registry = get_registry()
    table = Table(title="utom tasks")
    for column in ("task", "A → B", "channels", "summary", "plugin"):
        table.add_column(column)
    for task in registry.tasks.values():
        a, b = task.domain_a, task.domain_b
        table.add_row(task.name, f"{a.name} → {b.name}", f"{a.channels} → {b.channels}",
                      task.summary, task.plugin)
    stdout.print(table)


@cli.command("plugins")
def plugins_command() -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    registry = get_registry()
    table = Table(title="utom plugins")
    for column in ("plugin", "module", "distribution", "version", "hooks"):
        table.add_column(column)
    for info in registry.plugins:
        table.add_row(info.name, info.module, info.distribution, info.version,
                      ", ".join(info.hooks))
    stdout.print(table)


def _add_commands() -> None:
    from utom_core.commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_add_commands()


def _quiet_library_logs() -> None:
    """Libraries' log records (tifffile describing a corrupt file, …) are not shown: utom's own
    error names the file and the problem in one line. Logging configured by the caller wins."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def one_line(message: object) -> str:
    """An error message as one line (messages quoting library errors may hold newlines)."""
    return " ".join(line.strip() for line in str(message).splitlines() if line.strip())


def _error(message: object) -> None:
    console.print(f"error: {one_line(message)}", soft_wrap=True, markup=False, style="red")


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and a non-zero exit, no traceback."""
    warnings.showwarning = _show_warning
    _quiet_library_logs()
    try:
        cli.main(args=argv, prog_name="utom", standalone_mode=False)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.Abort:
        _error("interrupted")
        sys.exit(130)
    except click.ClickException as err:  # user text in it is not rich markup
        _error(err.format_message())
        sys.exit(err.exit_code)
    except UtomError as err:
        _error(err)
        sys.exit(2)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except OSError as err:  # disk full, read-only or missing folders, permissions
        where = f"{err.filename}: " if err.filename else ""
        _error(f"{where}{err.strerror or err}")
        sys.exit(1)
    except Exception as err:
        if not isinstance(err, MemoryError) and type(err).__name__ != "OutOfMemoryError":
            raise  # a bug: the traceback is what a report needs
        _error("out of memory; use smaller tiles, batches or networks")
        sys.exit(1)
