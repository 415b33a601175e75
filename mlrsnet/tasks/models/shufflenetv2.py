"""ShuffleNetV2 1.0x for 32x32 images (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN
Architecture Design", ECCV 2018).

CIFAR variant as in kuangliu/pytorch-cifar (models/shufflenetv2.py, ``net_size=1``): a 3x3 stride-1 stem
with 24 channels and no max-pool, then three stages (116, 232, 464 channels) each opened by a stride-2
down-sampling unit followed by 3, 7, 3 basic units, a 1x1 conv to 1024 channels, global average pooling
and a linear classifier: 1,263,854 parameters for 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model


def _channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class BasicUnit(nn.Module):
    """Channel split in halves; one half goes through 1x1, depthwise 3x3, 1x1; concat, then shuffle."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.branch = nn.Sequential(_conv_bn(half, half, 1), _conv_bn(half, half, 3, groups=half, act=False),
                                    _conv_bn(half, half, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.chunk(2, dim=1)
        return _channel_shuffle(torch.cat([x1, self.branch(x2)], dim=1))


class DownUnit(nn.Module):
    """Stride-2 unit: both branches see the full input and each produces half the output channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        mid = c_out // 2
        self.left = nn.Sequential(_conv_bn(c_in, c_in, 3, 2, groups=c_in, act=False), _conv_bn(c_in, mid, 1))
        self.right = nn.Sequential(_conv_bn(c_in, mid, 1), _conv_bn(mid, mid, 3, 2, groups=mid, act=False),
                                   _conv_bn(mid, mid, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _channel_shuffle(torch.cat([self.left(x), self.right(x)], dim=1))


@register_model("shufflenetv2")
class ShuffleNetV2(nn.Module):
    """ShuffleNetV2 1.0x with the CIFAR stem; adaptive pooling accepts larger inputs too."""

    def __init__(self, in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn(int(in_shape[0]), 24, 3)]
        c_in = 24
        for c_out, n in ((116, 3), (232, 7), (464, 3)):
            layers.append(DownUnit(c_in, c_out))
            layers += [BasicUnit(c_out) for _ in range(n)]
            c_in = c_out
        layers.append(_conv_bn(c_in, 1024, 1))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
