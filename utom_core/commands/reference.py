"""The command-line reference, docs/cli.md, rendered from the commands' own ``--help``.

``python -m utom_core.commands.reference > docs/cli.md`` regenerates it; a test checks that
the committed page equals what this module renders. Help is laid out at a fixed width, so the
page does not depend on the terminal it is made in.
"""

from __future__ import annotations

import click

from utom_core.cli import cli
from utom_core.commands import COMMANDS

WIDTH = 100
"""Columns the help is laid out in (click's formatter wraps at this width)."""
REGENERATE = "python -m utom_core.commands.reference > docs/cli.md"


def command_group() -> click.Group:
    """The ``utom`` group with every sub-command, as ``utom`` itself offers them."""
    for command in COMMANDS:
        cli.add_command(command)
    return cli


def help_texts(group: click.Group | None = None) -> dict[str, str]:
    """``utom --help`` and each sub-command's ``--help``, keyed by the command line that
    prints it (``utom``, ``utom train``, …), sub-commands in the order ``utom --help`` lists."""
    group = group or command_group()
    root = click.Context(group, info_name="utom", terminal_width=WIDTH,
                         max_content_width=WIDTH, **group.context_settings)
    texts = {"utom": group.get_help(root)}
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None or command.hidden:
            continue
        with click.Context(command, info_name=name, parent=root) as ctx:
            texts[f"utom {name}"] = command.get_help(ctx)
    return texts


def render(group: click.Group | None = None) -> str:
    """docs/cli.md: a contents list, then every command's help in a text block."""
    texts = help_texts(group)
    lines = ["# Command-line reference", "",
             "Every `utom` command's `--help`, as the installed package prints it. This page is",
             "generated; do not edit it by hand. After changing a command's options or help,",
             "regenerate it from the repository's root:", "",
             f"    {REGENERATE}", "",
             "(`tests/project/test_docs.py` fails while it differs.) What the commands do, and",
             "why, is in the [guide pages](index.md).", ""]
    lines += [f"- [`{title}`](#{_anchor(title)})" for title in texts]
    for title, text in texts.items():
        lines += ["", f"## `{title}`", "", "```text", text.rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _anchor(title: str) -> str:
    """The heading's anchor as GitHub's Markdown makes it (backticks dropped, lower case,
    spaces → dashes)."""
    return title.lower().replace(" ", "-")


def main() -> None:
    click.echo(render(), nl=False)


if __name__ == "__main__":
    main()
