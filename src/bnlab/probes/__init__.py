"""Instruments: measurements of any PyTorch model that leave no trace on it.

Every measurement is a plain function with one calling convention,
``f(model, loss_fn, batch, ..., *, bn_mode="train", ...)`` (``f(model, batch, ...)`` when no
loss is needed), that names layers by module name or 1-based norm-site index, returns plain
Python/numpy values and restores parameters, buffers, RNG streams, ``.grad`` fields and
training flags exactly, without moving an autograd version counter (a graph the user
built before the call can still be backpropagated). Each docstring states the cost in extra
passes. Numbers stay on the device until the measurement returns. A ``torch.compile``'d
model is measured through its original module. The ``*Probe`` classes run the same
measurements on a :class:`Schedule` inside :func:`bnlab.train.train`.
"""

from bnlab.probes.activations import ActivationStats, ActivationStatsProbe, activation_stats
from bnlab.probes.alignment import AlignmentProbe, output_gradient_alignment
from bnlab.probes.base import Probe, ProbeContext, Schedule
from bnlab.probes.depth import depth_profile, interpolated_step_stats
from bnlab.probes.explosion import gradient_explosion_rate
from bnlab.probes.gradients import GradientStatsProbe, gradient_stats
from bnlab.probes.hessian import (
    HessianEigs,
    activation_hvp,
    hessian_eigs,
    hessian_top_eigenvalues,
    hessian_trace,
)
from bnlab.probes.ics import ICSProbe, internal_covariate_shift
from bnlab.probes.landscape import LandscapeProbe, RelativeLossProbe, landscape, relative_loss
from bnlab.probes.theorems import bn_gradient_identity

__all__ = [
    "ActivationStats",
    "ActivationStatsProbe",
    "AlignmentProbe",
    "GradientStatsProbe",
    "HessianEigs",
    "ICSProbe",
    "LandscapeProbe",
    "Probe",
    "ProbeContext",
    "RelativeLossProbe",
    "Schedule",
    "activation_hvp",
    "activation_stats",
    "bn_gradient_identity",
    "depth_profile",
    "gradient_explosion_rate",
    "gradient_stats",
    "hessian_eigs",
    "hessian_top_eigenvalues",
    "hessian_trace",
    "internal_covariate_shift",
    "interpolated_step_stats",
    "landscape",
    "output_gradient_alignment",
    "relative_loss",
]
