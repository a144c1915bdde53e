"""Santurkar et al. 2018 (temporary package file; the VGG branch owns the real one)."""

from bnlab.experiments.santurkar2018 import theory

__all__ = ["theory"]
