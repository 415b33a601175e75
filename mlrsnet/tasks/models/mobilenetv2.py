"""MobileNetV2 for 32x32 images (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018).

Blocks, widths and ReLU6 follow the paper (identical layer shapes to torchvision's ``mobilenet_v2``).
The CIFAR adaptation follows kuangliu/pytorch-cifar (models/mobilenetv2.py): the stem convolution and the
first 24-channel stage use stride 1 instead of 2, so a 32x32 input reaches the last stage at 4x4.
kuangliu's blocks differ from the paper (an expansion conv even when t = 1 and 1x1 conv projections on
stride-1 channel-changing blocks, 2,296,922 parameters); we keep the paper's blocks: 2,236,682 parameters
for 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model

# (expansion t, output channels c, repeats n, stride s of the first repeat); strides 1 in the first two
# rows are the CIFAR adaptation (the paper's second row has stride 2).
_CFG: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(c_out)]
    if act:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion (omitted when t = 1), 3x3 depthwise, linear 1x1 projection; identity residual when
    the stride is 1 and the channel count is unchanged."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = [] if expansion == 1 else [_conv_bn(c_in, hidden, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden), _conv_bn(hidden, c_out, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out if self.residual else out


@register_model("mobilenetv2")
class MobileNetV2(nn.Module):
    """MobileNetV2 (width 1.0) with the CIFAR strides; adaptive pooling accepts larger inputs too."""

    def __init__(self, in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_conv_bn(int(in_shape[0]), 32, 3, 1)]
        c_in = 32
        for t, c, n, s in _CFG:
            for i in range(n):
                blocks.append(InvertedResidual(c_in, c, t, s if i == 0 else 1))
                c_in = c
        blocks.append(_conv_bn(c_in, 1280, 1))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1280, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
