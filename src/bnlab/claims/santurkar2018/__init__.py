"""Santurkar et al. 2018 (temporary package file; the VGG branch owns the real one)."""

from bnlab.claims.santurkar2018 import measures

__all__ = ["measures"]
