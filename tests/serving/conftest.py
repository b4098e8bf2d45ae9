"""A small trained model for the serving tests (an MLP, trained once per session)."""

from __future__ import annotations

import pytest

from tests.serving.small_model import train_mlp


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``models/mnist_mlp_v1.lance``: 4000 real digits, 2 epochs, about 0.9 test accuracy."""
    return train_mlp(tmp_path_factory.mktemp("lake"))
