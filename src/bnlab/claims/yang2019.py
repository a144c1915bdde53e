"""Claims of Yang et al. 2019 (PAPERS.md §8, claims 24–27).

Recipes ``yang2019.explosion`` (c24, c25) and ``yang2019.trainability`` (c26, c27).

**c24**: BN-ReLU MLPs at Kaiming initialization explode gradients by π/(π−1) ≈ 1.467 per
layer in squared norm at large batch, more at small batch. λ is the explosion rate the
recipe stores (:func:`bnlab.probes.gradient_explosion_rate`, middle half of the layers,
mean over random batches). Two parts: (i) at the largest batch run (256 at quick scale,
as PAPERS.md §8 claim 24 asks) |λ/(π/(π−1)) − 1| ≤ 3%; (ii) λ decreases strictly as the
batch grows through the grid. The value is the fraction of the parts that hold; the rule
asks for both. The unnormalized control (λ ≈ 1, "refutes if the BN ratio ≈ 1") is a
detail.

**c25**: near-linear activations explode less. At every batch size the linear BN
network's λ is closer to 1 than both the tanh and the ReLU network's; the value is the
fraction of batch sizes where that holds (rule: all).

For c24 and c25 a seed's value uses that seed's λ; the mean's uses the seed-mean λ
(``seedwise(mean="of_data")``).

**c26**: deep BN-ReLU MLPs without skip connections become untrainable, skips restore
them. Per network (depth, skip) the accuracy is the final test accuracy at the learning
rate with the best seed-mean final accuracy ("the best accuracy"); a diverged run counts
at chance (1/10: a diverged network predicts nothing). With c = 1/10 and A_s the
shallowest unnormalized-skip net's accuracy (depth 10 at quick scale), three parts:
(i) the shallowest net trains, A_s − c ≥ ½(1 − c) (more than halfway from chance to
perfect); (ii) the deepest net without skips (100) keeps at most half of A_s's
above-chance accuracy, A − c ≤ ½(A_s − c) ("falls sharply"); (iii) the same depth with
skips keeps more than half, A − c > ½(A_s − c) ("restores"). Value: the fraction that
hold; rule: all. Per seed: that seed's accuracies at the chosen LRs; the mean: the
seed-mean accuracies.

**c27**: the gradients' dynamic range collapses after one step. On the deepest net
without skips (the largest explosion, the one c26 calls untrainable) at c26's best LR for
it, the ratio ‖∂L/∂W_1‖ / ‖∂L/∂W_L‖ of the first and last hidden layers' weight
gradients is read before the first update (step 0) and before the second (step 1), each on
that step's training batch. The value is log10 of the ratio's drop (step 0 over step 1);
PAPERS.md's "drops by ≥ 10×" is a value ≥ 1. Per seed its own drop; the mean is the mean
of the log10 drops (a geometric mean: the ratios span orders of magnitude).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bnlab.claims.core import Claim, Detail, Measurement, MissingDataError, Rule
from bnlab.claims.helpers import Curves, load_curves, seedwise, with_diverged
from bnlab.claims.registry import register_claim
from bnlab.recipes.yang2019 import EXPLOSION, GRAD, PAPER, RATE, TEST_ACC, TRAINABILITY
from bnlab.results import Store

__all__ = [
    "C24",
    "C25",
    "C26",
    "C27",
    "CHANCE",
    "YANG",
    "best_accuracies",
    "final_accuracies",
    "grad_ratios",
    "measure_c24",
    "measure_c25",
    "measure_c26",
    "measure_c27",
]

YANG = math.pi / (math.pi - 1)  # the large-batch ReLU rate (PAPERS.md §4, S4b)
C24_TOLERANCE = 0.03  # PAPERS.md §8 claim 24 (issue 14): within 3% at B = 256
CHANCE = 0.1  # 10 classes
EXPLOSION_BY = ("norm", "activation", "batch_size")
ACTIVATIONS = ("relu", "tanh", "linear")


# -- c24, c25 ------------------------------------------------------------------------------


def _rates(store: Store, runs: pd.DataFrame) -> tuple[Curves, list[int]]:
    curves = load_curves(store, runs, RATE, EXPLOSION_BY)
    batches = curves.levels("batch_size", norm="bn", activation="relu")
    if len(batches) < 2:
        raise MissingDataError(f"the BN-ReLU rate needs two batch sizes, got {batches}")
    return curves, batches


def _by_seed(curves: Curves, batches: list[int], activations: tuple[str, ...],
             norm: str = "bn") -> dict[int, dict[str, np.ndarray]]:
    """Seed → activation → λ at each batch size (B,)."""
    table = {a: np.stack([curves.get(norm=norm, activation=a, batch_size=b)[:, -1]
                          for b in batches], axis=1) for a in activations}  # (S, B)
    return {seed: {a: table[a][i] for a in activations} for i, seed in enumerate(curves.seeds)}


def _c24_parts(lam: np.ndarray) -> tuple[bool, bool]:
    """(λ within 3% of π/(π−1) at the largest batch, λ strictly decreasing in B)."""
    return bool(abs(lam[-1] / YANG - 1.0) <= C24_TOLERANCE), bool((np.diff(lam) < 0).all())


def measure_c24(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of c24's parts (3% at the largest batch, decreasing in B) that hold."""
    curves, batches = _rates(store, runs)
    data = {s: d["relu"] for s, d in _by_seed(curves, batches, ("relu",)).items()}
    per_seed, mean = seedwise(data, lambda lam: float(np.mean(_c24_parts(lam))),
                              mean="of_data")
    lam = np.mean(list(data.values()), axis=0)
    near, falling = _c24_parts(lam)
    shown = ", ".join(f"B={b}: {v:.4f}" for b, v in zip(batches, lam, strict=True))
    details = [
        Detail(f"(i) |λ/(π/(π−1)) − 1| ≤ 3% at B={batches[-1]}",
               f"λ = {lam[-1]:.4f} vs {YANG:.4f}: {100 * (lam[-1] / YANG - 1):+.2f}%", near),
        Detail("(ii) λ decreases as B grows", shown, falling),
    ]
    try:
        control = np.mean([curves.get(norm="none", activation="relu", batch_size=b)[:, -1]
                           for b in batches], axis=1)
        details.append(Detail("control without BN (Kaiming)", ", ".join(
            f"B={b}: {v:.4f}" for b, v in zip(batches, control, strict=True))))
    except MissingDataError as err:
        details.append(Detail("control without BN", f"not run: {err}"))
    details.append(Detail("over 20 layers", f"(π/(π−1))^20 = {YANG ** 20:.3g} in squared "
                                            f"norm; measured λ^20 at B={batches[-1]}: "
                                            f"{lam[-1] ** 20:.3g}"))
    return Measurement(per_seed, mean, tuple(details), unit="fraction of (i), (ii)")


def _c25_holds(lams: dict[str, np.ndarray]) -> np.ndarray:
    """At each batch size: is the linear net's λ closer to 1 than tanh's and ReLU's?"""
    dist = {a: np.abs(lams[a] - 1.0) for a in ACTIVATIONS}
    return dist["linear"] < np.minimum(dist["tanh"], dist["relu"])


def measure_c25(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of batch sizes at which the linear net explodes least."""
    curves, batches = _rates(store, runs)
    data = _by_seed(curves, batches, ACTIVATIONS)
    per_seed, mean = seedwise(data, lambda d: float(_c25_holds(d).mean()), mean="of_data")
    lams = {a: np.mean([d[a] for d in data.values()], axis=0) for a in ACTIVATIONS}
    holds = _c25_holds(lams)
    details = tuple(
        Detail(f"B={b}", ", ".join(f"{a} {lams[a][i]:.4f}" for a in ACTIVATIONS),
               bool(holds[i])) for i, b in enumerate(batches))
    return Measurement(per_seed, mean, details, unit="fraction of batch sizes")


# -- c26, c27 ------------------------------------------------------------------------------


def final_accuracies(store: Store, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: depth, skip, lr, seed, status and final test accuracy.

    A diverged run's accuracy is chance (:data:`CHANCE`).
    """
    every = with_diverged(store, runs)
    for field in ("depth", "skip", "lr"):
        if f"cfg.{field}" not in every.columns:
            raise MissingDataError(f"the runs have no config field {field!r}")
    acc = store.metrics(runs=every["id"].astype(int).tolist(), names=TEST_ACC.name)
    last = acc.sort_values("step").groupby("run")["value"].last()
    table = pd.DataFrame({"id": every["id"].astype(int), "seed": every["seed"].astype(int),
                          "depth": every["cfg.depth"].astype(int),
                          "skip": every["cfg.skip"].astype(bool),
                          "lr": every["cfg.lr"].astype(float), "status": every["status"]})
    table["acc"] = [last.get(r, np.nan) if s == "finished" else CHANCE
                    for r, s in zip(table["id"], table["status"], strict=True)]
    missing = table[table["acc"].isna()]
    if not missing.empty:
        raise MissingDataError(f"run {int(missing['id'].iloc[0])} stored no {TEST_ACC.name!r}")
    return table


def best_accuracies(table: pd.DataFrame) -> dict[tuple[int, bool], tuple[float, pd.DataFrame]]:
    """(depth, skip) → (the LR with the best seed-mean accuracy, that LR's rows by seed)."""
    out = {}
    for (depth, skip), grp in table.groupby(["depth", "skip"]):
        means = grp.groupby("lr")["acc"].mean()
        lr = float(min(means.index[means == means.max()]))  # ties: the smaller LR
        out[(int(depth), bool(skip))] = (lr, grp[grp["lr"] == lr].sort_values("seed"))
    return out


def _c26_parts(shallow: float, deep: float, deep_skip: float) -> tuple[bool, bool, bool]:
    return (bool(shallow - CHANCE >= 0.5 * (1.0 - CHANCE)),
            bool(deep - CHANCE <= 0.5 * (shallow - CHANCE)),
            bool(deep_skip - CHANCE > 0.5 * (shallow - CHANCE)))


def _c26_nets(best: dict) -> tuple[tuple[int, bool], ...]:
    plain = sorted(d for d, s in best if not s)
    if len(plain) < 2 or (plain[-1], True) not in best:
        raise MissingDataError(f"c26 needs two depths without skips and the deepest with "
                               f"skips; got {sorted(best)}")
    return (plain[0], False), (plain[-1], False), (plain[-1], True)


def measure_c26(store: Store, runs: pd.DataFrame) -> Measurement:
    """The fraction of c26's parts (shallow trains, deep fails, skips restore) that hold."""
    best = best_accuracies(final_accuracies(store, runs))
    nets = _c26_nets(best)
    seeds = sorted(best[nets[0]][1]["seed"])
    data = {s: tuple(float(best[n][1].set_index("seed")["acc"][s]) for n in nets)
            for s in seeds}
    per_seed, mean = seedwise(data, lambda a: float(np.mean(_c26_parts(*a))), mean="of_data")
    accs = np.mean(list(data.values()), axis=0)
    parts = _c26_parts(*accs)
    names = (f"(i) depth {nets[0][0]} trains: acc − 0.1 ≥ 0.45",
             f"(ii) depth {nets[1][0]} without skips keeps ≤ half the above-chance accuracy",
             f"(iii) depth {nets[2][0]} with skips keeps more than half")
    details = [Detail(name, f"acc {a:.4f} at lr {best[n][0]:g}", ok)
               for name, a, n, ok in zip(names, accs, nets, parts, strict=True)]
    for (depth, skip), (lr, rows) in sorted(best.items()):
        diverged = int((rows["status"] == "diverged").sum())
        details.append(Detail(f"depth {depth}{', skips' if skip else ''}",
                              f"best lr {lr:g}: acc {rows['acc'].mean():.4f}"
                              + (f" ({diverged} diverged runs at chance)" if diverged else "")))
    return Measurement(per_seed, mean, tuple(details), unit="fraction of (i)–(iii)")


def grad_ratios(store: Store, run: int, depth: int) -> tuple[float, float]:
    """‖∂L/∂W_1‖ / ‖∂L/∂W_depth‖ of one run at its first two probed steps (0 and 1).

    Raises:
        MissingDataError: if the run stored either norm at fewer than two steps.
    """
    names = [GRAD.key(layer=1), GRAD.key(layer=depth)]
    m = store.metrics(runs=[run], names=names).pivot(index="step", columns="name",
                                                     values="value").sort_index()
    if list(m.columns) != sorted(names) or len(m.dropna()) < 2:
        raise MissingDataError(f"run {run} stored {names} at fewer than two steps")
    first, second = m.dropna().iloc[:2].itertuples(index=False, name=None)
    pick = {n: i for i, n in enumerate(m.columns)}
    return tuple(row[pick[names[0]]] / row[pick[names[1]]] for row in (first, second))


def measure_c27(store: Store, runs: pd.DataFrame) -> Measurement:
    """log10 of the drop of the first/last gradient-norm ratio over the first update."""
    best = best_accuracies(final_accuracies(store, runs))
    depth = _c26_nets(best)[1][0]
    lr, rows = best[(depth, False)]
    data = {int(s): grad_ratios(store, int(r), depth)
            for s, r in zip(rows["seed"], rows["id"], strict=True)}
    per_seed, mean = seedwise(data, lambda d: math.log10(d[0] / d[1]), mean="of_values")
    details = [Detail(f"depth {depth} at lr {lr:g} (c26's best)", "ratio before → after "
                      "one step: " + "; ".join(f"seed {s}: {a:.3g} → {b:.3g}"
                                               for s, (a, b) in data.items()))]
    for (d, skip), (lr_d, rows_d) in sorted(best.items()):
        if skip or d == depth:
            continue
        drops = [math.log10(a / b) for a, b in (grad_ratios(store, int(r), d)
                                                for r in rows_d["id"])]
        details.append(Detail(f"depth {d} at lr {lr_d:g}", f"log10 drop {np.mean(drops):.3g}"))
    return Measurement(per_seed, mean, tuple(details), unit="log10 of the ratio's drop")


# -- the claims ----------------------------------------------------------------------------

C24 = register_claim(Claim(
    id="c24",
    paper=PAPER,
    figure="§3–4; π/(π−1) via Luther (PAPERS.md §4, S4b)",
    statement=("At Kaiming initialization, a BN-ReLU MLP's squared gradient norm grows by "
               "π/(π−1) ≈ 1.467 per layer towards the input at large batch (within 3% at "
               "the largest batch run), and by more at smaller batches (λ decreases as the "
               "batch grows)."),
    kind="evidence",
    recipe=EXPLOSION.name,
    measure=measure_c24,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 24 and issue 14: |λ(B=256) − π/(π−1)| ≤ 3% "
              "and λ decreasing towards it as B grows",
              "both parts hold: fraction = 1"),
    explanation="explosion",
    paper_value=f"π/(π−1) = {YANG:.4f} per layer (large B, wide); Luther measured "
                "√λ ≈ 1.21 at width 1024, batch 512",
    min_scale="quick",
))

C25 = register_claim(Claim(
    id="c25",
    paper=PAPER,
    figure="abstract, claim 5 (PAPERS.md §4)",
    statement=("Near-linear activations reduce the explosion: at every batch size the BN "
               "network with a linear activation has an explosion rate closer to 1 than the "
               "tanh and the ReLU networks."),
    kind="evidence",
    recipe=EXPLOSION.name,
    measure=measure_c25,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 25: the ratio falls towards 1 as the activation "
              "becomes linear", "the linear net is closest to 1 at every batch size"),
    explanation="explosion",
    paper_value="qualitative: tuning towards the linear regime reduces the explosion",
    min_scale="quick",
))

C26 = register_claim(Claim(
    id="c26",
    paper=PAPER,
    figure="abstract, claim 4; trainability experiments [RECALLED]",
    statement=("BN-ReLU MLPs without skip connections become untrainable with depth: the "
               "shallowest net trains (best test accuracy more than halfway from chance to "
               "1), the deepest keeps at most half of its above-chance accuracy, and the "
               "same depth with skip connections keeps more than half."),
    kind="evidence",
    recipe=TRAINABILITY.name,
    measure=measure_c26,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 26 (\"falls sharply at depth 50–100 while the "
              "10-layer net trains; skips restore trainability\"); the halfway thresholds "
              "are this project's reading of \"trains\" and \"falls sharply\"",
              "all three parts hold: fraction = 1"),
    explanation="explosion",
    paper_value="qualitative: vanilla BN nets are not trainable at large depth",
    min_scale="quick",
    diverge_ok=lambda config: True,  # divergence of a deep net is an outcome c26 measures
))

C27 = register_claim(Claim(
    id="c27",
    paper=PAPER,
    figure="abstract, claim 6",
    statement=("After one SGD step the gradients' dynamic range collapses: on the deepest "
               "net without skips, at its best learning rate, the ratio of the first to the "
               "last hidden layer's weight-gradient norm drops at least 10× from step 0 to "
               "step 1."),
    kind="evidence",
    recipe=TRAINABILITY.name,
    measure=measure_c27,
    rule=Rule(">=", 1.0, "PAPERS.md §8 claim 27: the ratio drops by ≥ 10× (log10 ≥ 1)",
              "log10(ratio at step 0 / ratio at step 1) ≥ 1"),
    explanation="explosion",
    paper_value="qualitative: a stable equilibrium with a much smaller dynamic range",
    min_scale="quick",
    diverge_ok=lambda config: True,
))
