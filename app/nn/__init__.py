"""The NumPy engine: no web imports, no I/O. See each module's docstring for shapes."""

from app.nn.activations import ACTIVATIONS, HIDDEN_ACTIVATIONS, softmax
from app.nn.losses import LOSS_NAME, LOSSES, OUTPUT_ACTIVATION, output
from app.nn.mlp import INITS, MLP, init_layer
from app.nn.optim import OPTIMIZERS, REGULARIZATIONS, SCHEDULES, EpochPass, penalty, scheduled_lr, train_epoch

__all__ = [
    "ACTIVATIONS",
    "HIDDEN_ACTIVATIONS",
    "softmax",
    "LOSS_NAME",
    "LOSSES",
    "OUTPUT_ACTIVATION",
    "output",
    "INITS",
    "MLP",
    "init_layer",
    "OPTIMIZERS",
    "REGULARIZATIONS",
    "SCHEDULES",
    "penalty",
    "scheduled_lr",
    "train_epoch",
    "EpochPass",
]
