"""The paper's five tasks, registered through the ``utom`` entry point like any plugin."""

from utom_core.hookspecs import hookimpl
from utom_tasks.denoise import TASK as DENOISE
from utom_tasks.isotropic import TASK as ISOTROPIC
from utom_tasks.labeling import TASK as LABEL
from utom_tasks.stain_he import TASK as STAIN_HE
from utom_tasks.super_resolution import TASK as SR

BUILTIN_TASKS = (STAIN_HE, DENOISE, ISOTROPIC, SR, LABEL)


@hookimpl
def register_tasks(register):
    for task in BUILTIN_TASKS:
        register(task)
