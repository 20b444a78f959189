"""DenseNet-121/201 in plain torch with torchvision's parameter names.

Each dense layer concatenates every earlier feature map of its block (BN-ReLU-1x1 conv to
`bn_size * growth` channels, BN-ReLU-3x3 conv to `growth`); transitions halve channels and
resolution. `width` scales the growth rate and the stem (tests use small widths).
Taps: "stage1".."stage3" are dense blocks 1-3, "stage4" is the final normalised, rectified
feature map (after norm5), "pool" the pooled embedding.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from rcskd.models.layers import init_weights, scaled
from rcskd.registry import MODELS


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 on the concatenation of all earlier maps of the block."""

    def __init__(self, cin: int, growth: int, bn_size: int) -> None:
        super().__init__()
        mid = bn_size * growth
        self.norm1 = nn.BatchNorm2d(cin)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth, 3, 1, 1, bias=False)

    def forward(self, features: list[Tensor]) -> Tensor:
        x = torch.cat(features, 1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """`denselayer1..N`; returns the block input concatenated with every layer's output."""

    def __init__(self, n_layers: int, cin: int, growth: int, bn_size: int) -> None:
        super().__init__()
        for i in range(n_layers):
            self[f"denselayer{i + 1}"] = DenseLayer(cin + i * growth, growth, bn_size)

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 then 2x2 average pooling."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            OrderedDict(
                norm=nn.BatchNorm2d(cin),
                relu=nn.ReLU(inplace=True),
                conv=nn.Conv2d(cin, cout, 1, bias=False),
                pool=nn.AvgPool2d(2, 2),
            )
        )


class DenseNet(nn.Module):
    """DenseNet-BC (torchvision layout: `features.*`, `classifier`)."""

    def __init__(
        self,
        blocks: tuple[int, ...],
        growth: int,
        stem: int,
        num_classes: int,
        in_channels: int = 1,
        bn_size: int = 4,
    ) -> None:
        super().__init__()
        self.features = nn.Sequential(
            OrderedDict(
                conv0=nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False),
                norm0=nn.BatchNorm2d(stem),
                relu0=nn.ReLU(inplace=True),
                pool0=nn.MaxPool2d(3, 2, 1),
            )
        )
        channels = stem
        for i, n_layers in enumerate(blocks):
            self.features.add_module(
                f"denseblock{i + 1}", DenseBlock(n_layers, channels, growth, bn_size)
            )
            channels += n_layers * growth
            if i != len(blocks) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(channels))
        # Parameter-free modules (no state_dict keys): they give the taps something to hook.
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)
        init_weights(self)
        nn.init.kaiming_uniform_(self.classifier.weight, a=5**0.5)  # torchvision keeps the default

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.features(x))
        return self.classifier(self.avgpool(x).flatten(1))

    def taps(self) -> dict[str, nn.Module]:
        """Dense blocks 1-3, the final rectified map and the pooled embedding."""
        named: dict[str, nn.Module] = OrderedDict(
            (f"stage{i}", getattr(self.features, f"denseblock{i}")) for i in (1, 2, 3)
        )
        named["stage4"] = self.relu
        named["pool"] = self.avgpool
        return named


def _densenet(blocks: tuple[int, ...]):
    def build(num_classes: int, in_channels: int = 1, width: float = 1.0) -> DenseNet:
        return DenseNet(blocks, scaled(32, width), scaled(64, width), num_classes, in_channels)

    return build


MODELS.register("densenet121")(_densenet((6, 12, 24, 16)))
MODELS.register("densenet201")(_densenet((6, 12, 48, 32)))
