"""Sub-commands of ``utom``, each in its own module."""

COMMANDS: list = []
