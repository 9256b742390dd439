"""Small models and images made on the spot: the tests need no data files and no network."""

from __future__ import annotations

import pytest
import torch

from swintormer_cli.checkpoint import save_model

from .helpers import tiny_model

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _own_user_folder(tmp_path_factory, monkeypatch):
    """Every test gets an empty user folder (exports, user registry): the real one is never read or written."""
    monkeypatch.setenv("SWINTORMER_HOME", str(tmp_path_factory.mktemp("swintormer-home")))


@pytest.fixture
def model_file(tmp_path):
    """A tiny model with a latent prior, saved as a model file."""
    model, prior = tiny_model(prior=True)
    return save_model(tmp_path / "tiny.safetensors", model, prior, {"window": 64})


@pytest.fixture
def plain_model_file(tmp_path):
    model, _ = tiny_model(prior=False)
    return save_model(tmp_path / "plain.safetensors", model, None, {"window": 64})
