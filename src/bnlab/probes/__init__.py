"""Instruments: measurements of any PyTorch model that leave no trace on it."""

from bnlab.probes.base import Probe, ProbeContext

__all__ = ["Probe", "ProbeContext"]
