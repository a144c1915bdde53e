"""What Santurkar's measurement recipes measure: the DLN task, the probes they schedule, the
§4 checks against independent references, and which PAPERS.md §8 claims they register."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.claims import list_claims
from bnlab.experiments import RunEnv, get_recipe
from bnlab.experiments.santurkar2018 import dln, ics, landscape, lp_landscape, theory
from bnlab.models import create_model
from bnlab.probes import ICSProbe, LandscapeProbe
from bnlab.recipes.santurkar2018.measures import DLN_MULTIPLIERS, VGG_MULTIPLIERS

DLN_RECIPES = ("santurkar2018.ics", "santurkar2018.landscape", "santurkar2018.lp_landscape")
OURS = (*DLN_RECIPES, "santurkar2018.theory")
#: PAPERS.md §8 claims these recipes cover → the claim id that tests each (claim 12's DLN
#: part is c31; its VGG part is santurkar2018.lp's c12).
COVERED = {8: "c08", 9: "c09", 10: "c10", 11: "c11", 12: "c31", 13: "c13", 14: "c14"}


def _env(seed=0, data="paper"):
    return RunEnv(seed, "smoke", data, "cifar10", torch.device("cpu"))


# -- the DLN -----------------------------------------------------------------------------------


def _product(model: nn.Module) -> np.ndarray:
    """W_k ⋯ W_1 in float64, from the weights in depth order."""
    w = np.eye(10)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy() @ w
    return w


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_dln_loss_at_init_matches_the_closed_form(reduction):
    cfg = dln.DLNFields(dln_reduction=reduction)
    torch.manual_seed(0)
    x, y = dln.dln_data(cfg, _env())
    model = dln.build_dln(cfg, _env(), "none", x)
    x64, y64 = x.double().numpy(), y.double().numpy()
    a = np.linalg.lstsq(x64, y64, rcond=None)[0].T  # the task's A (y = A x exactly)
    diff = _product(model) - a
    closed = np.trace(diff @ (x64.T @ x64) @ diff.T)  # Σ_i ‖(W − A) x_i‖²
    if reduction == "mean":
        closed /= len(x64)
    loss = float(dln.dln_loss(reduction)(model(x), y).detach())
    assert loss == pytest.approx(closed, rel=1e-4)
    # The sum over 1,000 samples puts the initial loss at the paper's scale (Fig. 3b:
    # 10^3–10^4 during training), the mean three orders of magnitude lower.
    assert (1e4 < loss < 1e7) if reduction == "sum" else (10 < loss < 1e4)


def test_dln_task_is_full_batch_and_shared_by_the_norms_of_a_seed():
    cfg = dln.DLNFields()
    x, y = dln.dln_data(cfg, _env(seed=3))
    x2, _ = dln.dln_data(cfg, _env(seed=4))
    assert x.shape == (1000, 10) and not torch.equal(x, x2)
    batches = list(dln.full_batch(x, y, 3).epoch(0))
    assert len(batches) == 1 and torch.equal(batches[0][0], x)
    weights = {}
    for norm in ("none", "bn", "l1"):
        torch.manual_seed(3)
        model = dln.build_dln(cfg, _env(seed=3), norm, x)
        weights[norm] = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(weights["bn"]) == 25
    for a, b in zip(weights["none"], weights["bn"], strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", DLN_RECIPES)
@pytest.mark.parametrize("scale", ["smoke", "quick", "paper"])
def test_the_dln_runs_at_paper_size_at_every_scale(name, scale):
    cfg = get_recipe(name).presets[scale].config
    assert (cfg.dln_depth, cfg.dln_width, cfg.dln_samples) == (25, 10, 1000)
    assert cfg.dln_reduction == "sum"
    assert dln.dln_steps(cfg, _env()) == cfg.dln_steps
    if cfg.dln_mnist1d_steps:
        assert dln.dln_steps(cfg, _env(data="mnist1d")) == cfg.dln_mnist1d_steps


def test_recipe_grids_are_the_papers_learning_rates_and_eta_ranges():
    ics_parts = ics.PRESETS["paper"].parts()
    assert {p["net"][0]: p["lr"] for p in ics_parts} == {"vgg": (0.1, 0.01), "dln": (1e-6, 1e-7)}
    for part in lp_landscape.PRESETS["paper"].parts():
        lo, hi = min(part["multipliers"][0]), max(part["multipliers"][0])
        assert (lo, hi) == ((0.5, 4.0) if part["net"] == ("vgg",) else (0.01, 30.0))
        assert part["norm"] == ("none", "bn", "l1", "l2", "linf")
    # At paper scale landscape's runs are lp_landscape's Standard and BN runs (the same
    # configs); at quick scale lp_landscape trains VGG for 300 steps probed every 50 (its
    # runtime).
    assert landscape.PRESETS["paper"].config == lp_landscape.PRESETS["paper"].config
    quick_lp = lp_landscape.PRESETS["quick"].config
    assert quick_lp.steps == 300
    assert replace(landscape.PRESETS["quick"].config, steps=300, landscape_every=50) == quick_lp


def test_builds_schedule_the_figures_probes():
    cfg = ics.SMOKE
    job = ics.build(cfg.__class__(**{**cfg.__dict__, "net": "dln"}), _env())
    (probe,) = job.probes
    assert isinstance(probe, ICSProbe) and probe.layers == [9, 17]
    assert probe.due(0) and probe.due(cfg.ics_dln_every) and not probe.due(1)
    lcfg = landscape.SMOKE.__class__(**{**landscape.SMOKE.__dict__, "net": "dln",
                                         "multipliers": DLN_MULTIPLIERS})
    (lprobe,) = landscape.build(lcfg, _env()).probes
    assert isinstance(lprobe, LandscapeProbe) and lprobe.multipliers == DLN_MULTIPLIERS
    assert landscape.PAPER.multipliers == VGG_MULTIPLIERS


# -- §4 checks against references ----------------------------------------------------------------


def _mlp(seed=0, eps=1e-5, widths=(12, 12, 12)):
    torch.manual_seed(seed)
    model = create_model("mlp", norm="bn", in_shape=(20,), num_classes=5, widths=widths,
                         activation="relu", init="glorot", norm_kwargs={"eps": eps})
    x, y = torch.randn(48, 20), torch.randint(0, 5, (48,))
    return model, (x, y)


def test_thm41_identity_holds_and_the_printed_bound_fails():
    model, batch = _mlp()
    twin = theory.float64_twin(model)
    res = theory.thm41_site(twin, nn.functional.cross_entropy, theory._to64(batch), 2)
    assert res["rel_err"] < 1e-12 and res["m"] == 48
    assert res["printed_fail"] == 1.0  # ⟨g, ŷ⟩ ≠ 0 for random data in every channel


def test_thm42_is_an_equality_at_eps_zero_and_not_at_the_network_eps():
    model, batch = _mlp(seed=1)
    rows = theory.thm42_cases(theory.float64_twin(model, eps=1e-30),
                              nn.functional.cross_entropy, theory._to64(batch), 2, list(range(12)))
    lhs, t1, t2 = rows[:, 0], rows[:, 1], rows[:, 2]
    scale = np.abs(lhs) + np.abs(t1) + np.abs(t2)
    assert np.all(np.abs(lhs - (t1 - t2)) <= 1e-10 * scale)
    # T2's sign matters: flipped, the equality breaks (a sign slip would be caught).
    assert np.max(np.abs(lhs - (t1 + t2)) / scale) > 1e-3
    # With a large ε the relation is off by O(ε/σ²): the check runs at ε → 0 for a reason.
    rows = theory.thm42_cases(theory.float64_twin(model, eps=1e-2),
                              nn.functional.cross_entropy, theory._to64(batch), 2, list(range(12)))
    gap = np.abs(rows[:, 0] - (rows[:, 1] - rows[:, 2])) / np.abs(rows[:, :3]).sum(1)
    assert gap.max() > 1e-4


def test_observation43_rebuilds_a_plain_network_with_biases():
    model, batch = _mlp(seed=2)
    torch.manual_seed(5)
    plain = create_model("mlp", norm="none", in_shape=(20,), num_classes=5, widths=(12, 12, 12),
                         activation="relu", init="glorot")
    diff = theory.observation43(model, plain, batch, torch.Generator().manual_seed(0))
    assert diff < 1e-12
    assert any(float(m.bias.detach().abs().max()) > 0 for m in plain.modules()
               if isinstance(m, nn.Linear) and m.bias is not None)


def test_lemma45_both_sides_and_scale_invariance_against_numpy():
    model, batch = _mlp(seed=3)
    w0 = {n: s.layer.weight.detach().clone() for n, s in theory._site_layers(model)}
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight.add_(0.3 * torch.randn_like(m.weight)).mul_(1.7)
    twin0 = theory.float64_twin(model, eps=1e-30)
    res = theory.lemma45(twin0, w0, nn.functional.cross_entropy, theory._to64(batch))
    name, site = theory._site_layers(model)[0]
    a, b = w0[name].double().numpy().ravel(), site.layer.weight.detach().double().numpy().ravel()
    k = a @ b / (b @ b)
    lhs, rhs = np.sum((a - k * b) ** 2), np.sum((a - b) ** 2) - (b @ b - a @ b) ** 2 / (b @ b)
    cos, got_lhs, got_rhs, change = res[1]
    assert (got_lhs, got_rhs) == (pytest.approx(lhs), pytest.approx(rhs))
    assert cos == pytest.approx(a @ b / np.sqrt((a @ a) * (b @ b)))
    assert got_lhs == pytest.approx(got_rhs, rel=1e-12)  # the lemma holds with equality
    assert change < 1e-12  # BN(kWx) = BN(Wx) for k > 0


def test_theory_probe_leaves_no_trace():
    model, batch = _mlp(seed=4)
    plain = create_model("mlp", norm="none", in_shape=(20,), num_classes=5, widths=(12, 12, 12),
                         activation="relu", init="glorot")
    cfg = theory.SMOKE.__class__(**{**theory.SMOKE.__dict__, "mlp_widths": (12, 12, 12),
                                    "batch_size": 16})
    probe = theory.TheoryProbe(3, plain, batch, cfg, torch.Generator().manual_seed(0))
    nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    state = {k: v.clone() for k, v in model.state_dict().items()}  # params and running stats
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    logged = {}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in (0, 3):
        ctx = theory.ProbeContext(model, nn.functional.cross_entropy, batch, opt, 0.1, step,
                                  lambda name, value: logged.__setitem__(name, value))
        probe.on_step(ctx)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    for p, g in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)
    assert torch.equal(torch.get_rng_state(), rng) and model.training
    assert logged["thm42/2/cases"].shape == (cfg.thm42_batches, cfg.thm42_units, 6)
    assert {"lemma45/1", "lemma45/3", "obs43/max_rel_diff", "thm41/2/rel_err"} <= set(logged)


# -- claims ------------------------------------------------------------------------------------


def test_every_covered_papers_claim_is_registered_once_by_these_recipes():
    ours = [c for c in list_claims() if c.recipe in OURS]
    ids = [c.id for c in ours]
    assert sorted(ids) == sorted(COVERED.values())
    assert len(ids) == len(set(ids))
    assert "c12" not in ids  # claim 12's VGG part belongs to santurkar2018.lp


def test_papers_section_8_names_the_covered_claims_as_santurkars():
    papers = next((p for p in (Path(__file__).resolve().parents[3] / "shared/specs/PAPERS.md",
                               Path("/work/shared/specs/PAPERS.md")) if p.exists()), None)
    if papers is None:
        pytest.skip("PAPERS.md (the shared specification) is not beside this checkout")
    section = papers.read_text().split("## 8. Checkable claims", 1)[1].split("\n## ", 1)[0]
    for number in COVERED:
        match = re.search(rf"^{number}\. \*\*(.+?)\*\*", section, flags=re.M | re.S)
        assert match, f"PAPERS.md §8 has no claim {number}"
        assert re.search(r"Santurkar|Thm 4\.[12]", match.group(1)), match.group(1)


@pytest.mark.parametrize("name", OURS)
def test_the_card_states_the_quick_reductions(name):
    rec = get_recipe(name)
    quick, paper = rec.presets["quick"].config, rec.presets["paper"].config
    text, text_1d = rec.card.data_paper, rec.card.data_mnist1d
    assert quick.width == 0.125 and "width 1/8" in text
    assert quick.train_per_class == 1_000 and "1,000 CIFAR-10 images per class" in text
    assert f"for {quick.steps:,} steps (paper: {paper.steps:,})" in text
    assert f"Quick: VGG {quick.steps_mnist1d} steps" in text_1d or \
        f"Quick: {quick.steps_mnist1d} steps" in text_1d
    if name == "santurkar2018.theory":
        assert f"{quick.thm42_batches} batches × {quick.thm42_units} units" in text
        return
    every, dln_every = ((quick.ics_every, quick.ics_dln_every) if name.endswith("ics") else
                        (quick.landscape_every, quick.landscape_dln_every))
    assert f"every {every} steps" in text and f"every {dln_every}." in text
    assert f"the DLN for {quick.dln_steps:,} steps (paper: {paper.dln_steps:,})" in text
    assert f"the DLN {quick.dln_mnist1d_steps} steps" in text_1d
