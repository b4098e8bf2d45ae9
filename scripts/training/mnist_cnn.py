"""Train a small CNN on MNIST from the lake and write it as a model record.

The platform calls ``run(input_path, output_path, params)``; by hand:
``python scripts/training/mnist_cnn.py <lake>/datasets/mnist.lance /tmp/mnist_cnn.lance``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lakekit import training

ARCHITECTURE = (
    "mnist_cnn: conv3x3(1->16)+maxpool+BN+ReLU, conv3x3(16->32)+maxpool+BN+ReLU, "
    "FC(1568->128)+ReLU+dropout(0.25), FC(128->10)"
)
DEFAULTS: dict[str, Any] = {"epochs": 4, "learning_rate": 3e-3, "batch_size": 64}


def build_model() -> nn.Module:
    """The network: two conv blocks and a small classifier (about 0.2M parameters)."""
    # Pooling before BN+ReLU gives the same function class at a quarter of their cost.
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128),
        nn.ReLU(),
        nn.Dropout(0.25),
        nn.Linear(128, 10),
    )


def run(input_path: str, output_path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train on ``input_path`` (split train), test on split test, write ``output_path``.

    Params (all optional): epochs, learning_rate, batch_size, device, seed, limit, threads,
    log_every.
    """
    return training.train(
        build_model,
        input_path,
        output_path,
        params,
        defaults=DEFAULTS,
        architecture=ARCHITECTURE,
    )


if __name__ == "__main__":
    training.main(run, DEFAULTS)
