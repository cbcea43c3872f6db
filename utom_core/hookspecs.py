"""Hook specifications: every extension point of utom takes a ``register`` callback."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("utom")
hookimpl = HookimplMarker("utom")


@hookspec
def register_tasks(register):
    "Register Task descriptions: register(task) for each utom.Task the plugin provides"


@hookspec
def register_generators(register):
    "Register generators: register(name, factory); factory(in_channels, out_channels, config)"


@hookspec
def register_readers(register):
    "Register image readers: register(reader) for each ImageReader the plugin provides"


@hookspec
def register_writers(register):
    "Register image writers: register(writer) for each ImageWriter the plugin provides"


@hookspec
def register_evaluators(register):
    "Register evaluators: register(evaluator) for each Evaluator the plugin provides"


@hookspec
def register_methods(register):
    "Register training methods: register(method) for each utom_core.methods.TrainingMethod"
