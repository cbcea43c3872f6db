"""Sub-commands of ``utom``, each in its own module."""

from utom_core.commands.threshold import threshold_command
from utom_core.commands.train import train_command

COMMANDS: list = [train_command, threshold_command]
