"""bnlab.claims: published claims as data, measured on stored results, judged by rule.

Never imports torch. Importing the package registers every paper's claims (one module per
paper, e.g. :mod:`bnlab.claims.ioffe2015`); what they measure is declared on the recipe
cards (:mod:`bnlab.recipes`); :mod:`bnlab.claims.helpers` holds what measurements share.

Example:
    >>> from bnlab.claims import get_claim, list_claims
    >>> [c.id for c in list_claims("ioffe2015.mnist")]
    ['c01', 'c02']
    >>> get_claim("c02").rule.threshold
    3.0
"""

# Paper modules register their claims on import; they come after the registry they use.
from bnlab.claims import ioffe2015, kohler2019, yang2019
from bnlab.claims.core import (
    MIN_SEEDS,
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
from bnlab.claims.registry import CLAIMS, get_claim, list_claims, register_claim

__all__ = [
    "CLAIMS",
    "MIN_SEEDS",
    "Claim",
    "Detail",
    "Measurement",
    "MissingDataError",
    "Rule",
    "RunSet",
    "Verdict",
    "evaluate",
    "get_claim",
    "ioffe2015",
    "kohler2019",
    "list_claims",
    "register_claim",
    "run_sets",
    "select_runs",
    "yang2019",
]
