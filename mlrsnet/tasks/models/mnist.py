"""Models sized for 28x28 greyscale images (the MNIST family): they downsample before they pool, where the
digits CNN (8x8 inputs, one pooling) would average 28x28 feature maps into near-constant features."""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model
from mlrsnet.tasks.models.resnet import BasicBlock


@register_model("cnn28")
class CNN28(nn.Module):
    """Three conv-BN-ReLU blocks, max-pooling 28 -> 14 -> 7 after the first two, global average pooling, a
    linear head. BatchNorm is deliberate: the meta engine must leave running statistics untouched."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        c, w = int(in_shape[0]), int(width)
        self.features = nn.Sequential(
            nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("resnet28")
class ResNet28(nn.Module):
    """A small ResNet for 28x28 inputs: a 3x3 stem, three stages of one basic block each (stride 1, 2, 2:
    28 -> 14 -> 7), global average pooling, a linear head."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 28, 28), num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        c, w = int(in_shape[0]), int(width)
        self.stem = nn.Sequential(nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.stages = nn.Sequential(BasicBlock(w, w, 1), BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 4 * w, 2))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
