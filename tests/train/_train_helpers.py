"""Tiny models and a stand-in for bnlab.data.Loader (same interface: len, epoch(e, start))."""

import torch
from torch import nn


class TinyLoader:
    """Shuffled batches, a pure function of (seed, epoch), like bnlab.data.Loader."""

    def __init__(self, x, y, batch_size, seed=0):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed

    def __len__(self):
        return len(self.x) // self.batch_size

    def epoch(self, e, start=0):
        gen = torch.Generator().manual_seed(self.seed + 7919 * e)
        perm = torch.randperm(len(self.x), generator=gen)
        for i in range(start, len(self)):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]


class NoisyShift(nn.Module):
    """Adds noise from its own generator in training (the noise_state protocol)."""

    def __init__(self, seed=11):
        super().__init__()
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x):
        if not self.training:
            return x
        return x + 0.05 * torch.randn(x.shape, generator=self.gen)

    def noise_state(self):
        return {"gen": self.gen.get_state()}

    def set_noise_state(self, state):
        self.gen.set_state(state["gen"])


def make_model(seed=0, noisy=True):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 8), nn.BatchNorm1d(8)]
    if noisy:
        layers.append(NoisyShift())
    layers += [nn.Sigmoid(), nn.Dropout(0.1), nn.Linear(8, 3)]
    return nn.Sequential(*layers)


def make_data(n=48, seed=0):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(3, (n,), generator=gen)
    x = torch.randn(n, 6, generator=gen) + y[:, None].float()
    return x, y
