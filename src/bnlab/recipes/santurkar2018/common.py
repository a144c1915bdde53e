"""What every VGG recipe of Santurkar et al. 2018 stores, and the paper's layer numbers.

Santurkar, Tsipras, Ilyas & Madry 2018, "How Does Batch Normalization Help Optimization?"
(PAPERS.md §2). The VGG recipes (``santurkar2018.vgg``, ``.noise``, ``.lp`` and the
measurement recipes) share one network and one training setup
(:mod:`bnlab.experiments.santurkar2018.common`), so they share the accuracy quantities
declared here and the site map that turns the paper's layer numbers (#2 … #13) into
modules.
"""

from __future__ import annotations

from bnlab.recipes.card import metric

__all__ = [
    "CHANCE",
    "PAPER",
    "SITE_MAP",
    "SITE_MAP_TEXT",
    "TEST_ACC",
    "TEST_N",
    "TRAIN_ACC",
    "TRAIN_ACC_EVAL",
    "VGG_DATA_MNIST1D",
]

PAPER = "Santurkar et al. 2018"
#: Chance accuracy: CIFAR-10 and MNIST-1D both have 10 classes (the samples are balanced).
CHANCE = 0.1

#: Norm-site index → module of ``bnlab.models.vgg16`` (conv → norm → ReLU at every site).
#: The paper numbers layers #2 … #13 without saying how (PAPERS.md §2.1); we read them as
#: VGG-16's conv layers in depth order, so "layer #k" is conv k for k ≤ 13.
SITE_MAP: dict[int, str] = {
    **{k: f"features.conv{k}" for k in range(1, 14)},
    14: "classifier.fc1",
    15: "classifier.fc2",
}
SITE_MAP_TEXT = ("vgg16 norm sites: #1–#13 are conv1–conv13 (64, 64 | 128, 128 | 256×3 | "
                 "512×3 | 512×3 channels before width scaling, a 2× max-pool after each "
                 "group), #14–#15 the hidden FC layers fc1, fc2 (512); each site is "
                 "layer → norm → ReLU. The paper's layer #k is site k (conv k).")

_ACC_WHEN = "every eval_every steps and at the end"
TRAIN_ACC = metric(
    "train_acc",
    "training accuracy (fraction) on a fixed sample of acc_examples training inputs, the "
    "network as it trains: batch statistics of batch_size-input chunks and noise drawn "
    "(measured without trace: weights, running statistics and noise streams are restored)",
    when=_ACC_WHEN)
TRAIN_ACC_EVAL = metric(
    "train_acc_eval",
    "the same sample's accuracy in eval mode (running statistics, no noise): a detail",
    when=_ACC_WHEN)
TEST_ACC = metric(
    "test_acc",
    "test accuracy (fraction) in eval mode over test_examples test inputs (0: all of them)",
    when=_ACC_WHEN)
TEST_N = metric("test_n", "the number of test inputs behind test_acc", when=_ACC_WHEN)

VGG_DATA_MNIST1D = ("the same VGG with 1-D convolutions on the 40-sample MNIST-1D signals "
                    "(all 4,000 training and 1,000 test signals, standardized; the five "
                    "pools take the length 40 → 20 → 10 → 5 → 2 → 1), for steps_mnist1d "
                    "steps when that is set (quick scale) instead of steps")
