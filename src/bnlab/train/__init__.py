"""The generic training loop: optimizers, schedules, seeding, checkpoints, divergence.

Example:
    >>> from bnlab.train import SGD, MemorySink, build_optimizer, seed_everything, train
    >>> seed_everything(0, threads=1)
    >>> opt = build_optimizer(SGD(lr=0.1, momentum=0.9), model.parameters())
    >>> result = train(model, loader, loss_fn, opt, steps=500, sink=MemorySink())
"""

from bnlab.train.checkpoint import latest_step
from bnlab.train.loop import BatchSource, TrainResult, TrainRun, train
from bnlab.train.optim import SGD, Adam, OptimizerConfig, build_optimizer
from bnlab.train.schedules import (
    Constant,
    Cosine,
    Exponential,
    LRSchedule,
    Plateau,
    Schedule,
    Step,
    Warmup,
)
from bnlab.train.seed import seed_everything
from bnlab.train.sink import MemorySink, NullSink, Sink

__all__ = [
    "SGD",
    "Adam",
    "BatchSource",
    "Constant",
    "Cosine",
    "Exponential",
    "LRSchedule",
    "MemorySink",
    "NullSink",
    "OptimizerConfig",
    "Plateau",
    "Schedule",
    "Sink",
    "Step",
    "TrainResult",
    "TrainRun",
    "Warmup",
    "build_optimizer",
    "latest_step",
    "seed_everything",
    "train",
]
