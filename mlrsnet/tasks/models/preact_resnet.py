"""Pre-activation ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016).

CIFAR variant after kuangliu/pytorch-cifar (models/preact_resnet.py): 3x3 stride-1 stem, no max-pool,
BN-ReLU before each convolution and un-normalised 1x1 projection shortcuts. Unlike kuangliu's file we keep
the paper's final BN-ReLU before global pooling (the last block's output is otherwise never normalised);
it adds 1,024 parameters: 11,172,170 for 10 classes against kuangliu's 11,171,146.
"""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3, BN-ReLU-conv3x3, plus identity (or 1x1 conv projection of the activated input)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # The projection reads the activated input, as in the paper's full pre-activation unit.
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + shortcut


@register_model("preact_resnet18")
class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 with a CIFAR stem; adaptive pooling lets it run on 64x64 inputs too."""

    def __init__(self, in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(int(in_shape[0]), 64, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = 64
        for i in range(4):
            c_out = 64 * 2**i
            for j in range(2):
                blocks.append(PreActBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1))
                c_in = c_out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c_in, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
