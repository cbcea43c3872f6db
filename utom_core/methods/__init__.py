"""Training methods: the objectives utom trains, registered like any plugin's
(``register_methods``); see ``base`` for the interface and docs/plugins.md for a guide."""

from utom_core.methods.base import (
    SALIENCY_SETTINGS,
    Method,
    StepContext,
    StepNetworks,
    TrainingMethod,
)
from utom_core.methods.contrastive import CUT, FASTCUT, UTOM_CUT
from utom_core.methods.cycle import CYCLEGAN, CYCLEGAN_IDENTITY, UTOM

SUPERVISED = Method(
    name="supervised", paired=True,
    summary="the ceiling: a U-Net with L1 on aligned pairs, where a task can build them",
    source="the bench's reference row (not an unpaired method)",
    ignores=SALIENCY_SETTINGS | {"n_blocks", "ndf", "lambda_cycle", "identity",
                                 "lambda_identity", "lambda_shift", "lambda_background",
                                 "white_balance", "pool_size"})

BUILTIN = (UTOM, CYCLEGAN, CYCLEGAN_IDENTITY, CUT, FASTCUT, UTOM_CUT, SUPERVISED)

__all__ = ["BUILTIN", "Method", "StepContext", "StepNetworks", "TrainingMethod"]
