"""Helpers for the model tests: tiny builds of every model on 2-D and 1-D inputs."""

import torch
from torch import nn

from bnlab.models import create_model

# Small enough for 2 shared CPU cores, deep enough to keep every site (resnet110 keeps
# its 109 sites at a quarter of the width).
TINY: dict[str, dict] = {
    "mlp": {"width": 8},
    "dln": {},
    "vgg11": {"width": 0.0625},
    "vgg16": {"width": 0.0625},
    "resnet20": {"width": 0.25},
    "resnet56": {"width": 0.25},
    "resnet110": {"width": 0.25},
}
INPUTS = {"image": (3, 8, 8), "signal": (1, 40)}

# resnet56 and resnet110 are resnet20 with more identical blocks: they run with the two
# reference norms only, every other norm runs on resnet20 (keeps the suite fast on 2 cores;
# their structure is covered for every norm by the site tests, which need no forward).
DEEP = ("resnet56", "resnet110")
BASE_NORMS = ("bn", "none")


def model_norm_cases(models: list[str], norms: list[str]) -> list[tuple[str, str]]:
    """(model, norm) pairs: every norm for every model except the deep ResNets."""
    return [(m, n) for m in models for n in norms if m not in DEEP or n in BASE_NORMS]
NUM_CLASSES = 5


def build(name: str, norm: str = "bn", kind: str = "image", **overrides) -> nn.Module:
    """A tiny, seeded model of ``name`` for input ``kind`` ("image" or "signal")."""
    torch.manual_seed(0)
    kwargs = {**TINY.get(name, {}), **overrides}
    return create_model(name, norm=norm, in_shape=INPUTS[kind], num_classes=NUM_CLASSES, **kwargs)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Conv/linear modules in registration order."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]


def execution_trace(model: nn.Module, x: torch.Tensor) -> list[nn.Module]:
    """Leaf modules in the order they run during ``model(x)`` (by forward hooks)."""
    trace: list[nn.Module] = []
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda mod, i, o: trace.append(mod)) for m in leaves]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return trace
