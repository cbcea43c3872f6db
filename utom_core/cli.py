"""The ``utom`` command line: a click group whose commands live in ``utom_core.commands``."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from utom_core import __version__
from utom_core.console import console, stdout
from utom_core.errors import UtomError, interrupt_within

if TYPE_CHECKING:
    from utom_core.methods import Method


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    console.print(Text.assemble(("warning:", "yellow"), f" {message}"), soft_wrap=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="utom")
def cli() -> None:
    """utom: unpaired, content-preserving transformation of microscopy images (UTOM)."""


def _listing(title: str, columns: tuple[str, ...], rows: list[dict[str, str]], as_json: bool
             ) -> None:
    """A table on stdout, whole however narrow the terminal a pipe would claim (80 columns),
    or with ``as_json`` a JSON list of the rows (keys: the columns)."""
    if as_json:
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[column] for column in columns))
    wide = stdout if stdout.is_terminal else Console(width=UNLIMITED_WIDTH, highlight=False,
                                                      markup=False)
    wide.print(table)


UNLIMITED_WIDTH = 10_000
"""Width a listing is laid out in when stdout is not a terminal: never cut."""
JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print JSON, not a table.")


@cli.command("tasks")
@JSON_OPTION
def tasks_command(as_json: bool) -> None:
    """List the registered tasks (built in and from installed plugins)."""
    from utom_core.plugins import get_registry

    rows = [{"task": task.name, "A → B": f"{task.domain_a.name} → {task.domain_b.name}",
             "channels": f"{task.domain_a.channels} → {task.domain_b.channels}",
             "summary": task.summary, "plugin": task.plugin}
            for task in get_registry().tasks.values()]
    _listing("utom tasks", ("task", "A → B", "channels", "summary", "plugin"), rows, as_json)


@cli.command("methods")
@JSON_OPTION
def methods_command(as_json: bool) -> None:
    """List the registered training methods (built in and from installed plugins)."""
    from utom_core.plugins import get_registry

    rows = [{"method": m.name, "trains": ("aligned pairs" if m.paired else
                                          "G: A→B, F: B→A" if m.two_sided else "G: A→B"),
             "summary": m.summary, "settings": _own_settings(m), "source": m.source}
            for m in get_registry().methods.values()]
    _listing("utom methods", ("method", "trains", "summary", "settings", "source"), rows,
             as_json)


def _own_settings(method: Method) -> str:
    """The method's own settings with their defaults, as ``--set`` takes them."""
    if method.settings_model is None:
        return ""
    return ", ".join(f"method_settings.{name}={field.default}"
                     for name, field in method.settings_model.model_fields.items())


@cli.command("plugins")
@JSON_OPTION
def plugins_command(as_json: bool) -> None:
    """List the loaded plugins, their versions and the hooks they implement."""
    from utom_core.plugins import get_registry

    rows = [{"plugin": info.name, "module": info.module, "distribution": info.distribution,
             "version": info.version, "hooks": ", ".join(info.hooks)}
            for info in get_registry().plugins]
    _listing("utom plugins", ("plugin", "module", "distribution", "version", "hooks"), rows,
             as_json)


def _add_commands() -> None:
    """Called by ``main`` (not at import): the commands import torch, which takes seconds, and
    a Ctrl-C meanwhile must end like any other (one line, exit 130)."""
    from utom_core.commands import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


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


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_is_ctrl_c() -> Iterator[None]:
    """SIGTERM (``kill``, a batch scheduler's time limit) ends a command as Ctrl-C does: partial
    outputs are removed and the exit code is 130. Training installs its own handler for both
    (finish the iteration, save a checkpoint) while it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and their exit code (2 for bad input,
    1 where the disk or the system refused), interruptions 130; no traceback."""
    warnings.showwarning = _show_warning
    _quiet_library_logs()
    try:
        with _sigterm_is_ctrl_c():
            _add_commands()
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
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(130)
    except OSError as err:  # disk full, read-only or missing folders, permissions
        where = f"{err.filename}: " if err.filename else ""
        _error(f"{where}{err.strerror or err}")
        sys.exit(1)
    except Exception as err:
        if interrupt_within(err):
            _error("interrupted")
            sys.exit(130)
        if not isinstance(err, MemoryError) and type(err).__name__ != "OutOfMemoryError":
            raise  # a bug: the traceback is what a report needs
        _error("out of memory; use smaller tiles, batches or networks"
               + "".join(f"; {note}" for note in getattr(err, "__notes__", ())))
        sys.exit(1)
