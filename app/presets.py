"""Named setups a page can start from (?preset=…), written as a share link's query values."""

from __future__ import annotations

PRESETS: dict[str, dict[str, str]] = {
    "default": {
        "dataset": "circle",
        "hidden": "4:tanh,2:tanh",
        "learning_rate": "0.03",
        "optimizer": "sgd",
        "features": "x1,x2",
        "batch_size": "10",
    },
    # The seed article's figure: 64 pixel inputs, two ReLU hidden layers, softmax over 10 digits.
    "seed": {
        "dataset": "digits",
        "hidden": "128:relu,64:relu",
        "optimizer": "adam",
        "learning_rate": "0.001",
        "batch_size": "32",
        "init": "he",
    },
    "spiral": {
        "dataset": "spiral",
        "hidden": "8:tanh,8:tanh,8:tanh,8:tanh,8:tanh,8:tanh",
        "learning_rate": "0.003",
        "optimizer": "adam",
        "batch_size": "10",
        "epochs_per_frame": "5",
        "noise": "0",
    },
}
