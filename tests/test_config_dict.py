"""One way to read configuration from data: unknown keys refused by name, values checked by type."""

import pytest

from swintormer_cli.data.degradation import DegradationConfig
from swintormer_cli.models import SwintormerConfig
from swintormer_cli.training.config import load_config
from swintormer_cli.weights import RegistryEntry


@pytest.mark.parametrize(
    "build,message",
    [
        (lambda: SwintormerConfig.from_dict({"dimm": 8}), "unknown key ['dimm']"),
        (lambda: SwintormerConfig.from_dict({"dim": "8"}), "dim: should be a whole number"),
        (lambda: DegradationConfig.from_dict({"max_radius": [1.0]}), "max_radius: should have 2 values"),
        (lambda: RegistryEntry.from_dict("m", {"file": "m.safetensors", "windw": 3}), "unknown key ['windw']"),
        (lambda: RegistryEntry.from_dict("m", {"file": "m.safetensors", "window": True}), "whole number"),
        (lambda: load_config(None, ["optim.lr=fast"]), "optim.lr: should be a number"),
        (lambda: load_config(None, ["data.nope=1"]), "unknown key ['nope']"),
    ],
)
def test_bad_data_is_refused_by_name(build, message):
    with pytest.raises(ValueError) as info:
        build()
    assert message in str(info.value)


def test_lists_become_tuples_and_integers_floats():
    cfg = load_config(None, ["optim.betas=[1, 0.99]", "optim.lr=1"])
    assert cfg.optim.betas == (1.0, 0.99) and isinstance(cfg.optim.lr, float)
    # A registry written before `weights export --shift` went still loads.
    assert RegistryEntry.from_dict("m", {"file": "m.safetensors", "shift": 48}).to_dict() == {
        "file": "m.safetensors",
        "sha256": "",
        "description": "",
        "preset": "",
        "prior": "none",
    }
