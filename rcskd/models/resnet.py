"""ResNets in plain torch with torchvision's parameter names (its checkpoints load unchanged).

ImageNet-style: resnet18/34/50 (stem conv 7x7 + max-pool, four stages). CIFAR-style for small
inputs: resnet20/32/56 (three stages of 16/32/64 channels) and resnet8x4/32x4 (three stages of
64/128/256), stem conv 3x3 without pooling. `width` scales every channel count (tests use small
widths); `in_channels` is 1 for grey MRI or 3.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn

from rcskd.registry import MODELS


def _ch(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    expansion = 1

    def __init__(self, cin: int, mid: int, stride: int = 1) -> None:
        super().__init__()
        cout = mid * self.expansion
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = _projection(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision's v1.5), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, mid: int, stride: int = 1) -> None:
        super().__init__()
        cout = mid * self.expansion
        self.conv1 = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _projection(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """A ResNet; `taps()` names each stage's output ("stage1".."stageN") and "pool"."""

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: list[int],
        widths: list[int],
        num_classes: int,
        in_channels: int = 1,
        small_input: bool = False,
        stem: int | None = None,
    ) -> None:
        super().__init__()
        stem = stem or widths[0]
        if small_input:  # CIFAR style: 3x3 stem, no pooling
            self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        cin = stem
        self.stage_names: list[str] = []
        for i, (depth, mid) in enumerate(zip(depths, widths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(block(cin, mid, stride))
                cin = mid * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            self.stage_names.append(f"layer{i + 1}")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.avgpool(self.features(x)).flatten(1))

    def taps(self) -> dict[str, nn.Module]:
        """Named feature layers: each stage's output and the pooled embedding."""
        named = OrderedDict(
            (f"stage{i + 1}", getattr(self, n)) for i, n in enumerate(self.stage_names)
        )
        named["pool"] = self.avgpool
        return named


def _imagenet(block, depths):
    def build(num_classes: int, in_channels: int = 1, width: float = 1.0) -> ResNet:
        widths = [_ch(c, width) for c in (64, 128, 256, 512)]
        return ResNet(block, depths, widths, num_classes, in_channels)

    return build


def _cifar(block, depths, base, stem=None):
    def build(num_classes: int, in_channels: int = 1, width: float = 1.0) -> ResNet:
        widths = [_ch(c, width) for c in base]
        stem_width = _ch(stem, width) if stem else None
        return ResNet(block, depths, widths, num_classes, in_channels, True, stem_width)

    return build


MODELS.register("resnet18")(_imagenet(BasicBlock, [2, 2, 2, 2]))
MODELS.register("resnet34")(_imagenet(BasicBlock, [3, 4, 6, 3]))
MODELS.register("resnet50")(_imagenet(Bottleneck, [3, 4, 6, 3]))
MODELS.register("resnet20")(_cifar(BasicBlock, [3, 3, 3], (16, 32, 64)))
MODELS.register("resnet32")(_cifar(BasicBlock, [5, 5, 5], (16, 32, 64)))
MODELS.register("resnet56")(_cifar(BasicBlock, [9, 9, 9], (16, 32, 64)))
MODELS.register("resnet8x4")(_cifar(BasicBlock, [1, 1, 1], (64, 128, 256), stem=32))
MODELS.register("resnet32x4")(_cifar(BasicBlock, [5, 5, 5], (64, 128, 256), stem=32))
