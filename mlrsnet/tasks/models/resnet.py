"""ResNet-18/34 for small images (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016).

CIFAR variant as in kuangliu/pytorch-cifar (models/resnet.py): a 3x3 stride-1 stem convolution and no
max-pool, so a 32x32 input reaches the last stage at 4x4. Global average pooling is adaptive, so the same
network runs on 64x64 TinyImageNet images. Parameter counts for 10 classes: ResNet-18 11,173,962;
ResNet-34 21,282,122.
"""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection; 1x1 conv-BN projection when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """Four-stage ResNet of basic blocks (widths 64-128-256-512) with a CIFAR stem.

    ``num_blocks`` gives the blocks per stage: (2, 2, 2, 2) is ResNet-18, (3, 4, 6, 3) is ResNet-34.
    """

    def __init__(self, num_blocks: tuple[int, int, int, int], in_shape: tuple[int, ...] = (3, 32, 32),
                 num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(int(in_shape[0]), 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU())
        stages: list[nn.Module] = []
        c_in = 64
        for i, n in enumerate(num_blocks):
            c_out = 64 * 2**i
            for j in range(n):
                stages.append(BasicBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model("resnet18")
def resnet18(in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> ResNet:
    """ResNet-18, CIFAR variant (11,173,962 parameters for 10 classes)."""
    return ResNet((2, 2, 2, 2), in_shape=in_shape, num_classes=num_classes)


@register_model("resnet34")
def resnet34(in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> ResNet:
    """ResNet-34, CIFAR variant (21,282,122 parameters for 10 classes)."""
    return ResNet((3, 4, 6, 3), in_shape=in_shape, num_classes=num_classes)
