"""What the Bjorck et al. 2018 recipes measure, pinned; rmt and noise_scale against theory."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
import torch
from torch import nn

from bnlab.experiments import RunEnv, get_recipe, run_spec
from bnlab.experiments.bjorck2018 import depth, divergence, gradients, lr, noise_scale, rmt
from bnlab.experiments.bjorck2018.common import random_batch, resnet
from bnlab.models import norm_sites
from bnlab.probes import RelativeLossProbe
from bnlab.recipes import bjorck2018 as card
from bnlab.results import Store
from bnlab.sweep import execute
from bnlab.train import MemorySink, Step, Warmup, train


def _env(seed: int = 0, data: str = "mnist1d", dataset: str | None = "cifar10") -> RunEnv:
    return RunEnv(seed, "smoke", data, dataset, torch.device("cpu"))


def _smoke_cfg(module, **changes):
    recipe = get_recipe(module.RECIPE.name)
    return recipe.config_of({**vars(module.PRESETS["smoke"].config), **changes})


# -- the network and the layers the paper names ----------------------------------------------


def test_resnet110_layer_numbers_match_the_paper():
    net = resnet("resnet110", "bn", (1, 40), init="kaiming", init_none="glorot")
    sites = norm_sites(net)
    assert len(sites) == 109  # 109 convs; the read-out is layer 110
    for layer, channels in card.INTERP_LAYERS.items():  # Fig. 4: 16, 32 and 64 channels
        assert sites[layer - 1].layer.out_channels == channels
    assert sites[55 - 1].name == "stage2.8.unit2.norm"  # layer 55: the middle of stage 2


def test_the_no_bn_network_uses_its_own_init_and_has_conv_biases():
    torch.manual_seed(0)
    glorot = resnet("resnet110", "none", (1, 40), init="kaiming", init_none="glorot")
    torch.manual_seed(0)
    he = resnet("resnet110", "none", (1, 40), init="glorot", init_none="kaiming")
    w_g, w_h = glorot.stage2[8].unit2.layer.weight, he.stage2[8].unit2.layer.weight
    fan_in = w_g[0].numel()
    assert w_g.var().item() == pytest.approx(1 / fan_in, rel=0.1)  # Glorot, equal fans
    assert w_h.var().item() == pytest.approx(2 / fan_in, rel=0.1)  # He
    assert glorot.stage2[8].unit2.layer.bias is not None


def test_bn_and_no_bn_runs_of_a_seed_see_the_same_batch_and_other_seeds_another():
    x, y = torch.randn(300, 1, 40), torch.arange(300) % 10
    a = random_batch(x, y, 16, _env(0).generator(0))
    b = random_batch(x, y, 16, _env(0).generator(0))
    c = random_batch(x, y, 16, _env(1).generator(0))
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert len(set(a[1].tolist())) > 1


# -- the recipes' stored values against direct computations ----------------------------------


def _run_measure(module, tmp_path, **changes):
    recipe = get_recipe(module.RECIPE.name)
    plan = recipe.plan("smoke", seeds=[0], execution={"device": "cpu"},
                       sets=[f"{k}={v}" for k, v in changes.items()])
    summary = execute(plan.specs, tmp_path, run_spec, progress=False)
    assert summary.failures == []
    return Store(tmp_path), plan


def test_gradients_recipe_stores_the_kernel_gradient_of_layer_55(tmp_path):
    store, _ = _run_measure(gradients, tmp_path)
    runs = store.runs()
    run = runs[runs["cfg.norm"] == "none"].iloc[0]
    cfg = get_recipe(gradients.RECIPE.name).config_of(run["config"])
    env = _env()
    torch.manual_seed(0)  # the harness seeds every global RNG with the run's seed
    x, y = gradients.centered_data(env)
    xb, yb = random_batch(x, y, cfg.batch_size, env.generator(0))
    net = resnet("resnet110", "none", tuple(x.shape[1:]), init=cfg.init,
                 init_none=cfg.init_none)
    nn.functional.cross_entropy(net(xb), yb).backward()
    g = net.stage2[8].unit2.layer.weight.grad.double()
    std = store.metrics(runs=int(run["id"]), names=card.GRAD_STD.name)["value"].iloc[0]
    assert std == pytest.approx(float(g.std(correction=0)), rel=1e-5)
    dlogits = store.arrays(int(run["id"]), card.DLOGITS.name)[0][1]
    assert dlogits.shape == (cfg.batch_size, 10)
    assert np.allclose(dlogits.sum(1), 0.0, atol=1e-7)  # softmax − one-hot: rows sum to 0


def test_depth_recipe_ends_with_the_read_out_measured_on_the_logits(tmp_path):
    store, _ = _run_measure(depth, tmp_path)
    runs = store.runs()
    run = int(runs[runs["cfg.norm"] == "none"]["id"].iloc[0])
    layers = store.arrays(run, card.DEPTH_LAYER.name)[0][1]
    assert layers.tolist() == [6, 18, 30, 42, 54, 66, 78, 90, 102, 110]
    env = _env()
    torch.manual_seed(0)
    x, y = depth.centered_data(env)
    xb, _ = random_batch(x, y, 16, env.generator(0))
    net = resnet("resnet110", "none", tuple(x.shape[1:]), init="kaiming", init_none="glorot")
    with torch.no_grad():
        logits = net(xb).double()  # (16, 10)
    expected = np.log10(logits.std(0, correction=0).numpy()).mean()
    assert store.arrays(run, card.DEPTH_LOG_STD.name)[0][1][-1] == pytest.approx(expected,
                                                                                 rel=1e-5)


def test_divergence_probes_batches_1_4_7_on_the_paper_eta_grid():
    job = divergence.build(_smoke_cfg(divergence, norm="none", lr=1e-4), _env())
    rel = [p for p in job.probes if isinstance(p, RelativeLossProbe)]
    assert len(rel) == 1 and rel[0].schedule.steps == {0, 3, 6} and job.steps == 7
    assert np.allclose(rel[0].etas, np.logspace(-5, -1, 5))
    assert any(isinstance(p, divergence.DivergingStepProbe) for p in job.probes)
    bn_job = divergence.build(_smoke_cfg(divergence, norm="bn", lr=0.1), _env())
    assert not any(isinstance(p, divergence.DivergingStepProbe) for p in bn_job.probes)
    assert [g["lr"] for g in bn_job.optimizer.param_groups] == [0.1]


def test_diverging_step_probe_interpolates_the_plain_gradient_step():
    torch.manual_seed(0)
    net = resnet("resnet110", "none", (1, 40), init="kaiming", init_none="glorot")
    x, y = torch.randn(8, 1, 40), torch.arange(8) % 10
    sink = MemorySink()
    probe = divergence.DivergingStepProbe(eta=1e-4, points=3, where="pre_norm")
    train(net, _OneBatch(x, y), nn.functional.cross_entropy,
          torch.optim.SGD(net.parameters(), lr=0.0), steps=1, probes=[probe], sink=sink)
    arrays = {(step, name): a for step, name, a in sink.arrays}
    loss = arrays[(0, card.INTERP_LOSS.name)]
    torch.manual_seed(0)
    twin = resnet("resnet110", "none", (1, 40), init="kaiming", init_none="glorot")
    nn.functional.cross_entropy(twin(x), y).backward()
    with torch.no_grad():
        for p in twin.parameters():
            p -= 1e-4 * p.grad
        end = nn.functional.cross_entropy(twin(x), y).item()
    assert loss.shape == (3,) and loss[-1] == pytest.approx(end, rel=1e-4)
    assert loss[-1] < 0.5 * loss[0]  # the step moved the loss
    assert arrays[(0, card.INTERP_VAR[80].name)].shape == (3, 64)


class _OneBatch:
    """A loader of one fixed batch per epoch (the train loop's BatchSource)."""

    def __init__(self, x, y):
        self.batch = (x, y)

    def __len__(self):
        return 1

    def epoch(self, e, start=0):
        return iter([self.batch][start:])


# -- lr -------------------------------------------------------------------------------------


def test_lr_grid_runs_fig_1_plus_the_diverging_no_bn_runs():
    conditions = lambda preset: {(n, lr) for part in lr.PRESETS[preset].parts()  # noqa: E731
                                 for n, lr in product(part["norm"], part["lr"])}
    fig1 = {("bn", 0.1), ("bn", 0.003), ("bn", 1e-4), ("none", 1e-4)}
    for scale in ("smoke", "quick", "paper"):
        assert conditions(scale) == fig1 | {("none", 0.003), ("none", 0.1)}
    long = [p for p in lr.PRESETS["paper"].parts() if "epochs" in p]
    assert long == [{"norm": ("bn", "none"), "lr": (1e-4,), "epochs": (2400,)}]


def test_lr_schedule_drops_tenfold_at_half_of_training():
    cfg = lr.PAPER
    sched = lr._schedule(cfg, 1000)
    assert isinstance(sched, Warmup) and sched.steps == 400 and sched.start_factor == 0.1
    assert sched.then == Step(every=500, gamma=0.1)
    assert lr._schedule(lr.QUICK, 300) == Step(every=150, gamma=0.1)


def test_lr_quick_preset_builds_on_mnist1d_whose_test_classes_are_unbalanced():
    recipe = get_recipe(lr.RECIPE.name)
    cfg = recipe.config_of(vars(lr.PRESETS["quick"].config))
    job = recipe.build(cfg, _env())  # MNIST-1D's test split has 89 signals of class 2
    assert job.loader.x.shape[0] == 10 * cfg.per_class == 2000
    assert job.steps == cfg.epochs * (2000 // cfg.batch_size)  # 12 epochs of 15 steps


def test_lr_train_accuracy_reads_the_training_subset(tmp_path):
    recipe = get_recipe(lr.RECIPE.name)
    cfg = _smoke_cfg(lr)
    job = recipe.build(cfg, _env())
    assert job.loader.x.shape[0] == 10 * cfg.per_class
    metrics = job.evaluate(job.model.eval())
    assert set(metrics) == {card.TRAIN_ACC.name, card.TEST_ACC.name, card.TEST_N.name}
    assert metrics[card.TEST_N.name] == cfg.test_eval


# -- rmt against random-matrix theory --------------------------------------------------------


def _fuss_catalan(m: int, k: int) -> float:
    """E[σ^(2k)] of a product of m N(0, 1/N) matrices as N → ∞: C((m+1)k, k) / (mk + 1)."""
    return math.comb((m + 1) * k, k) / (m * k + 1)


@pytest.mark.parametrize("m", [1, 3, 5])
def test_product_singular_values_follow_the_fuss_catalan_law(m):
    gen = torch.Generator().manual_seed(m)
    sv = rmt.product_singular_values(400, m, gen)
    assert sv.shape == (400,) and np.all(np.diff(sv) <= 0)
    sq = sv**2
    assert sq.mean() == pytest.approx(_fuss_catalan(m, 1), rel=0.05)  # = 1
    assert (sq**2).mean() == pytest.approx(_fuss_catalan(m, 2), rel=0.15)  # 2, 4, 6
    assert sv[0] == pytest.approx(card.product_edge(m), rel=0.06)


def test_product_edge_closed_form():
    assert card.product_edge(1) == 2.0
    assert card.product_edge(3) == pytest.approx(16 / 3**1.5)
    assert card.product_edge(5) == pytest.approx(6**3 / 5**2.5)


def test_one_factor_is_the_matrix_itself():
    a = rmt.product_singular_values(30, 1, torch.Generator().manual_seed(3))
    w = torch.randn(30, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert np.allclose(a, torch.linalg.svdvals(w / math.sqrt(30)).numpy())


# -- noise_scale against the exact expectations ----------------------------------------------


def test_centered_gram_and_per_example_grads_match_loops():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 4))
    x, y = torch.randn(5, 1, 6), torch.tensor([0, 1, 2, 3, 0])
    grads = noise_scale.per_example_grads(model, x, y, chunk=2)  # (5, P)
    for i in range(5):
        model.zero_grad()
        nn.functional.cross_entropy(model(x[i : i + 1].double()), y[i : i + 1]).backward()
        flat = torch.cat([p.grad.flatten() for p in model.parameters()])
        assert torch.allclose(grads[i], flat, atol=1e-12)
    gram = noise_scale.centered_gram(grads)
    c = grads - grads.mean(0)
    assert torch.allclose(gram, torch.stack([torch.stack([c[i] @ c[j] for j in range(5)])
                                             for i in range(5)]))


def _exact(gram: torch.Tensor, batch: int, with_replacement: bool) -> float:
    """E over every possible mini-batch of (1/B²) Σ_{i,j∈B} K_ij, by enumeration."""
    n = gram.shape[0]
    from itertools import combinations

    batches = (product(range(n), repeat=batch) if with_replacement
               else combinations(range(n), batch))
    values = [float(gram[list(b)][:, list(b)].sum()) / batch**2 for b in batches]
    return float(np.mean(values))


@pytest.mark.parametrize("with_replacement", [True, False], ids=["with", "without"])
def test_noise_draws_average_to_the_exact_expectation(with_replacement):
    g = torch.randn(6, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    gram = noise_scale.centered_gram(g)
    c, n, b = float(gram.diagonal().mean()), 6, 3
    exact = _exact(gram, b, with_replacement)
    closed = c / b if with_replacement else c / b * (n - b) / (n - 1)
    assert exact == pytest.approx(closed, rel=1e-12)  # the identities the claim tests
    draws = noise_scale.noise_draws(gram, b, 40_000, with_replacement,
                                    torch.Generator().manual_seed(1))
    assert float(draws.mean()) == pytest.approx(exact, rel=0.02)
    if not with_replacement:  # distinct indices in every draw
        idx_check = torch.rand(5, n, generator=torch.Generator().manual_seed(2)).argsort(1)
        assert all(len(set(r[:b].tolist())) == b for r in idx_check)


def test_noise_scale_recipe_estimates_sit_on_their_closed_forms(tmp_path):
    store, plan = _run_measure(noise_scale, tmp_path, noise_draws=3000)
    run = int(store.runs()["id"].iloc[0])
    est = store.arrays(run, card.NOISE_ESTIMATE.name)[0][1]  # (2, |B|, |α|)
    se = store.arrays(run, card.NOISE_SE.name)[0][1]
    bound = store.arrays(run, card.NOISE_BOUND.name)[0][1]
    cfg = get_recipe(noise_scale.RECIPE.name).config_of(plan.specs[0].config)
    n = cfg.examples
    fpc = np.array([(n - b) / (n - 1) for b in cfg.batch_sizes])[:, None]  # (|B|, 1)
    assert np.all(np.abs(est[0] - bound[0]) <= 4 * se[0])
    assert np.all(np.abs(est[1] - bound[1] * fpc) <= 4 * se[1])
    c = store.metrics(runs=run, names=card.NOISE_C.name)["value"].iloc[0]
    alphas, sizes = np.array(cfg.alphas), np.array(cfg.batch_sizes)
    assert np.allclose(bound[0], alphas[None, :] ** 2 * c / sizes[:, None])
