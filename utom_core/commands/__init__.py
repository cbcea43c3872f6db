"""Sub-commands of ``utom``, each in its own module."""

from utom_core.commands.bench import bench_command
from utom_core.commands.export import export_command
from utom_core.commands.import_generator import import_generator_command
from utom_core.commands.predict import predict_command
from utom_core.commands.run import run_command
from utom_core.commands.threshold import threshold_command
from utom_core.commands.train import train_command

COMMANDS: list = [run_command, train_command, predict_command, threshold_command, bench_command,
                  export_command, import_generator_command]
