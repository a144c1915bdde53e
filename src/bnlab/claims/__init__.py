"""bnlab.claims: published claims as data, measured on stored results, judged by rule.

Never imports torch. Importing the package registers every paper's claims and recipe
metadata (one module per paper, e.g. :mod:`bnlab.claims.ioffe2015`).

Example:
    >>> from bnlab.claims import get_claim, list_claims
    >>> [c.id for c in list_claims("ioffe2015.mnist")]
    ['c01', 'c02']
    >>> get_claim("c02").rule.threshold
    3.0
"""

# Paper modules register their claims on import; they come after the registry they use.
from bnlab.claims import ioffe2015
from bnlab.claims.core import (
    MIN_SEEDS,
    SCALES,
    Claim,
    Detail,
    Measurement,
    MissingDataError,
    Rule,
    RunSet,
    Verdict,
    evaluate,
    run_sets,
    select_runs,
)
from bnlab.claims.registry import (
    RecipeInfo,
    get_claim,
    get_recipe,
    list_claims,
    list_recipes,
    register_claim,
    register_recipe,
)

__all__ = [
    "MIN_SEEDS",
    "SCALES",
    "Claim",
    "Detail",
    "Measurement",
    "MissingDataError",
    "RecipeInfo",
    "Rule",
    "RunSet",
    "Verdict",
    "evaluate",
    "get_claim",
    "get_recipe",
    "ioffe2015",
    "list_claims",
    "list_recipes",
    "register_claim",
    "register_recipe",
    "run_sets",
    "select_runs",
]
