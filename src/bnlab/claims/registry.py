"""The registry of claims (ids ``c01`` … follow PAPERS.md §8).

A duplicate id is an error; an unknown one is an
:class:`~bnlab.registry.UnknownNameError` listing the registered ids. What the report
shows about a recipe (paper, figure, summary, figures) is its card, :mod:`bnlab.recipes`.
"""

from __future__ import annotations

from bnlab.claims.core import Claim
from bnlab.registry import Registry

__all__ = ["CLAIMS", "get_claim", "list_claims", "register_claim"]

#: Every registered claim by id.
CLAIMS: Registry[Claim] = Registry("claim")


def register_claim(claim: Claim) -> Claim:
    """Add ``claim`` to the registry and return it (a duplicate id is a ``ValueError``)."""
    return CLAIMS.add(claim.id, claim)


def get_claim(claim_id: str) -> Claim:
    """The registered claim ``claim_id``; an unknown id lists the registered ones."""
    return CLAIMS.get(claim_id)


def list_claims(recipe: str | None = None) -> list[Claim]:
    """The registered claims sorted by id, optionally only those of ``recipe``."""
    return [c for c in CLAIMS.values() if recipe is None or c.recipe == recipe]
