"""MobileNetV2 and MobileNetV3 (small, large) with torchvision's parameter names.

Inverted residual blocks: 1x1 expansion, depthwise 3x3/5x5, optional squeeze-excitation (V3),
linear 1x1 projection; a residual when stride is 1 and channels match. `width` is the usual
width multiplier (channels rounded to multiples of 8, as torchvision does). Taps "stage1".."stage4"
are the last block at 1/4, 1/8, 1/16 and 1/32 of the input size (stage4 includes the final
1x1 conv), "pool" the pooled embedding.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

from torch import Tensor, nn

from rcskd.models.layers import ConvBNAct, init_weights, make_divisible
from rcskd.registry import MODELS


class InvertedResidualV2(nn.Module):
    """MobileNetV2 block: `conv` = [expand] depthwise project."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        return x + out if self.use_res_connect else out


class SqueezeExcitation(nn.Module):
    """Channel gating: pool, 1x1 squeeze (ReLU), 1x1 excite (hard sigmoid)."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


# (kernel, expanded, out, squeeze-excitation, activation "RE" | "HS", stride), before width scaling
V3_LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
V3_SMALL = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]

_V3_BN = {"bn_eps": 0.001, "bn_momentum": 0.01}


class InvertedResidualV3(nn.Module):
    """MobileNetV3 block: `block` = [expand] depthwise [SE] project."""

    def __init__(
        self, cin: int, kernel: int, hidden: int, cout: int, se: bool, act: str, stride: int
    ) -> None:
        super().__init__()
        activation = nn.Hardswish if act == "HS" else nn.ReLU
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if hidden != cin:
            layers.append(ConvBNAct(cin, hidden, 1, activation=activation, **_V3_BN))
        layers.append(
            ConvBNAct(hidden, hidden, kernel, stride, hidden, activation=activation, **_V3_BN)
        )
        if se:
            layers.append(SqueezeExcitation(hidden, make_divisible(hidden // 4, 8)))
        layers.append(ConvBNAct(hidden, cout, 1, activation=None, **_V3_BN))
        self.block = nn.Sequential(*layers)
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.use_res_connect else out


class MobileNet(nn.Module):
    """Shared shell: `features` (stem, blocks, last conv), pooling, `classifier`."""

    features: nn.Sequential
    classifier: nn.Sequential

    def __init__(self) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self._tap_index: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))

    def _set_taps(self, strides: list[int]) -> None:
        """Tap the last layer at each resolution (1/4 .. 1/32); `strides` per features entry."""
        scale, last_at = 1, {}
        for i, s in enumerate(strides):
            scale *= s
            last_at[scale] = i
        self._tap_index = [last_at[s] for s in (4, 8, 16) if s in last_at]
        self._tap_index.append(len(self.features) - 1)

    def taps(self) -> dict[str, nn.Module]:
        """The last block at 1/4, 1/8, 1/16 of the input, the final conv, the pooled embedding."""
        named: dict[str, nn.Module] = OrderedDict(
            (f"stage{k + 1}", self.features[i]) for k, i in enumerate(self._tap_index)
        )
        named["pool"] = self.avgpool
        return named


class MobileNetV2(MobileNet):
    """MobileNetV2 (Sandler et al., 2018)."""

    # (expansion, channels, repeats, first stride)
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1)]
    SETTINGS += [(6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, num_classes: int, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        cin = make_divisible(32 * width)
        last = make_divisible(1280 * max(1.0, width))
        layers: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2)]
        strides = [2]
        for t, c, n, s in self.SETTINGS:
            cout = make_divisible(c * width)
            for i in range(n):
                stride = s if i == 0 else 1
                layers.append(InvertedResidualV2(cin, cout, stride, t))
                strides.append(stride)
                cin = cout
        layers.append(ConvBNAct(cin, last, 1))
        strides.append(1)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))
        self._set_taps(strides)
        init_weights(self)


class MobileNetV3(MobileNet):
    """MobileNetV3 (Howard et al., 2019), torchvision's large and small configurations."""

    def __init__(
        self,
        config: list[tuple],
        last_channel: int,
        num_classes: int,
        in_channels: int = 1,
        width: float = 1.0,
    ) -> None:
        super().__init__()
        adjust = partial(_adjust, width=width)
        cin = adjust(16)
        layers: list[nn.Module] = [
            ConvBNAct(in_channels, cin, 3, 2, activation=nn.Hardswish, **_V3_BN)
        ]
        strides = [2]
        for kernel, hidden, cout, se, act, stride in config:
            cout, hidden = adjust(cout), adjust(hidden)
            layers.append(InvertedResidualV3(cin, kernel, hidden, cout, se, act, stride))
            strides.append(stride)
            cin = cout
        last_conv = 6 * cin
        layers.append(ConvBNAct(cin, last_conv, 1, activation=nn.Hardswish, **_V3_BN))
        strides.append(1)
        self.features = nn.Sequential(*layers)
        last = adjust(last_channel)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last),
            nn.Hardswish(inplace=True),
            nn.Dropout(0.2, inplace=True),
            nn.Linear(last, num_classes),
        )
        self._set_taps(strides)
        init_weights(self)


def _adjust(channels: int, width: float) -> int:
    return make_divisible(channels * width, 8)


@MODELS.register("mobilenet_v2")
def mobilenet_v2(num_classes: int, in_channels: int = 1, width: float = 1.0) -> MobileNetV2:
    """MobileNetV2 with width multiplier `width`."""
    return MobileNetV2(num_classes, in_channels, width)


@MODELS.register("mobilenet_v3_large")
def mobilenet_v3_large(num_classes: int, in_channels: int = 1, width: float = 1.0) -> MobileNetV3:
    """MobileNetV3-Large with width multiplier `width`."""
    return MobileNetV3(V3_LARGE, 1280, num_classes, in_channels, width)


@MODELS.register("mobilenet_v3_small")
def mobilenet_v3_small(num_classes: int, in_channels: int = 1, width: float = 1.0) -> MobileNetV3:
    """MobileNetV3-Small with width multiplier `width`."""
    return MobileNetV3(V3_SMALL, 1024, num_classes, in_channels, width)
