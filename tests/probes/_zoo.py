"""Small networks in the style of common public CIFAR model collections (our own code).

They carry the block shapes that broke the probes on users' models (issue 18): a
pre-activation block with a 1×1 projection shortcut registered last and an in-place residual
sum, a MobileNetV2 inverted residual whose last BN feeds the next convolution directly and
uses depthwise convolutions, a DenseNet block that concatenates, an EfficientNet block with
squeeze-excitation whose expansion layers are registered but never called, and a net whose
convolutions are registered before their norms. All use native ``nn.BatchNorm2d``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice; the shortcut is a 1×1 conv when the shape changes (registered last)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if hasattr(self, "shortcut") else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        out += shortcut  # in place, as the collections write it
        return out


class PreActNet(nn.Module):
    """Stem conv, a projection block, an identity block, BN-ReLU, pool, linear."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.layer1 = nn.Sequential(PreActBlock(4, 6, stride=2))
        self.layer2 = nn.Sequential(PreActBlock(6, 6))
        self.bn = nn.BatchNorm2d(6)
        self.linear = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer2(self.layer1(self.conv1(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)  # (N, 6)
        return self.linear(out)


class InvertedResidual(nn.Module):
    """Expand 1×1, depthwise 3×3, project 1×1 (linear bottleneck: bn3 has no ReLU)."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        mid = expansion * c_in
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride == 1 and c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))  # at stride 2 this feeds the next conv directly
        return out + self.shortcut(x) if self.stride == 1 else out


class MobileNetV2Net(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layers = nn.Sequential(
            InvertedResidual(4, 4, 2, 1), InvertedResidual(4, 6, 2, 2), InvertedResidual(6, 8, 2, 1)
        )
        self.conv2 = nn.Conv2d(8, 10, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(10)
        self.linear = nn.Linear(10, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        out = F.relu(self.bn2(self.conv2(out)))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class DenseLayer(nn.Module):
    """BN-ReLU-conv1×1, BN-ReLU-conv3×3, then concatenate with the input."""

    def __init__(self, c_in: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 2 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return torch.cat([out, x], 1)


class DenseNet(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.dense = nn.Sequential(DenseLayer(4, 2), DenseLayer(6, 2))
        self.bn = nn.BatchNorm2d(8)
        self.linear = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.dense(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


def swish(x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(x)


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, c_se: int) -> None:
        super().__init__()
        self.se1 = nn.Conv2d(c, c_se, 1)
        self.se2 = nn.Conv2d(c_se, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)  # (N, C, 1, 1)
        return x * torch.sigmoid(self.se2(swish(self.se1(s))))


class MBConv(nn.Module):
    """EfficientNet block; with expand_ratio 1 the expansion conv and BN are never called."""

    def __init__(self, c_in: int, c_out: int, expand_ratio: int, stride: int) -> None:
        super().__init__()
        self.expand_ratio = expand_ratio
        self.has_skip = stride == 1 and c_in == c_out
        mid = expand_ratio * c_in
        self.conv1 = nn.Conv2d(c_in, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid, max(1, c_in // 2))
        self.conv3 = nn.Conv2d(mid, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand_ratio == 1 else swish(self.bn1(self.conv1(x)))
        out = self.se(swish(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return out + x if self.has_skip else out


class EfficientNet(nn.Module):
    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.layers = nn.Sequential(MBConv(4, 4, 1, 1), MBConv(4, 6, 2, 2))
        self.linear = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(swish(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


class ListNet(nn.Module):
    """Convs and norms kept in two ModuleLists: every conv is registered before every norm."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 5, 3, padding=1),
                                    nn.Conv2d(5, 6, 3, padding=1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(4), nn.BatchNorm2d(5), nn.BatchNorm2d(6)])
        self.head = nn.Linear(6, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)))
        return self.head(x.mean(dim=(2, 3)))


ZOO = {
    "preact": PreActNet,
    "mobilenetv2": MobileNetV2Net,
    "densenet": DenseNet,
    "efficientnet": EfficientNet,
    "modulelist": ListNet,
}


def make(name: str, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    """A zoo model, seeded, in ``dtype``, in train mode."""
    torch.manual_seed(seed)
    return ZOO[name]().to(dtype).train()


def batch(n: int = 6, seed: int = 1, dtype: torch.dtype = torch.float64,
          classes: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, 3, 8, 8) inputs and class labels."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 8, 8, generator=gen, dtype=dtype)
    return x, torch.randint(0, classes, (n,), generator=gen)
