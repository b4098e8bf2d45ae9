"""Train an MLP on MNIST from the lake and write it as a model record.

Same record format as ``mnist_cnn.py``; a different network, to show that serving is generic.
By hand: ``python scripts/training/mnist_mlp.py <lake>/datasets/mnist.lance /tmp/mnist_mlp.lance``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from lakekit import training

ARCHITECTURE = (
    "mnist_mlp: FC(784->256)+ReLU+dropout(0.2), FC(256->128)+ReLU+dropout(0.2), FC(128->10)"
)
DEFAULTS: dict[str, Any] = {"epochs": 3, "learning_rate": 2e-3, "batch_size": 128}


def build_model() -> nn.Module:
    """The network: 784-256-128-10 with dropout (about 0.24M parameters)."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(28 * 28, 256),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Dropout(0.2),
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
