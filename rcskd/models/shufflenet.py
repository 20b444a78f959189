"""ShuffleNetV2 (x0.5, x1.0, x1.5, x2.0) with torchvision's parameter names.

A unit splits its channels in two (stride 1) or feeds both branches (stride 2), transforms one
half with 1x1 / depthwise 3x3 / 1x1 convolutions, concatenates and shuffles the channels.
`width` scales the stage widths further (tests use small widths). Taps: "stage1" is the stem
(1/4), "stage2" and "stage3" torchvision's stage2 and stage3 (1/8, 1/16), "stage4" the final
1x1 conv after stage4 (1/32), "pool" the pooled embedding.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from rcskd.models.layers import init_weights
from rcskd.registry import MODELS

STAGE_CHANNELS = {
    "x0_5": (24, 48, 96, 192, 1024),
    "x1_0": (24, 116, 232, 464, 1024),
    "x1_5": (24, 176, 352, 704, 1024),
    "x2_0": (24, 244, 488, 976, 2048),
}


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channels of `groups` groups (so information crosses branches)."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _depthwise(channels: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False)


class ShuffleUnit(nn.Module):
    """torchvision's InvertedResidual of ShuffleNetV2: `branch1` (stride 2 only), `branch2`."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        if stride == 1 and cin != 2 * (cout // 2):
            raise ValueError(f"a stride-1 shuffle unit needs cin == cout, got {cin} -> {cout}")
        half = cout // 2
        self.stride = stride
        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(cin, stride),
                nn.BatchNorm2d(cin),
                nn.Conv2d(cin, half, 1, bias=False),
                nn.BatchNorm2d(half),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
            _depthwise(half, stride),
            nn.BatchNorm2d(half),
            nn.Conv2d(half, half, 1, bias=False),
            nn.BatchNorm2d(half),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 (Ma et al., 2018), torchvision layout."""

    def __init__(self, channels: tuple[int, ...], num_classes: int, in_channels: int = 1) -> None:
        super().__init__()
        stem, *stages, last = channels
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, stem, 3, 2, 1, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = stem
        names, repeats_per_stage = ("stage2", "stage3", "stage4"), (4, 8, 4)
        for name, repeats, cout in zip(names, repeats_per_stage, stages, strict=True):
            units = [ShuffleUnit(cin, cout, 2)]
            units += [ShuffleUnit(cout, cout, 1) for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*units))
            cin = cout
        self.conv5 = nn.Sequential(
            nn.Conv2d(cin, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(inplace=True)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # parameter-free: a module so it can be tapped
        self.fc = nn.Linear(last, num_classes)
        init_weights(self)
        nn.init.kaiming_uniform_(self.fc.weight, a=5**0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.stage4(self.stage3(self.stage2(x))))
        return self.fc(self.avgpool(x).flatten(1))

    def taps(self) -> dict[str, nn.Module]:
        """Stem (1/4), stage2 (1/8), stage3 (1/16), final conv (1/32), pooled embedding."""
        return OrderedDict(
            stage1=self.maxpool,
            stage2=self.stage2,
            stage3=self.stage3,
            stage4=self.conv5,
            pool=self.avgpool,
        )


def _shufflenet(size: str):
    def build(num_classes: int, in_channels: int = 1, width: float = 1.0) -> ShuffleNetV2:
        # even widths: a unit splits its channels in two halves
        chans = tuple(max(2, 2 * int(round(c * width / 2))) for c in STAGE_CHANNELS[size])
        return ShuffleNetV2(chans, num_classes, in_channels)

    return build


for _size in STAGE_CHANNELS:
    MODELS.register(f"shufflenet_v2_{_size}")(_shufflenet(_size))
