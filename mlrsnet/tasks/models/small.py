"""Small models for the offline tasks (scikit-learn digits: 1x8x8 images, 10 classes)."""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.tasks.models.registry import register_model
from mlrsnet.tasks.models.resnet import BasicBlock


@register_model("mlp")
class MLP(nn.Module):
    """Fully connected classifier: flatten -> [Linear-ReLU] x depth -> Linear."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, width: int = 128,
                 depth: int = 2) -> None:
        super().__init__()
        d_in = 1
        for s in in_shape:
            d_in *= int(s)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(d_in, width), nn.ReLU()]
            d_in = width
        layers.append(nn.Linear(d_in, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("cnn")
class SmallCNN(nn.Module):
    """Two conv-BN-ReLU blocks with pooling, then a linear head. BatchNorm is deliberate: the
    meta engine must leave running statistics untouched during its lookahead."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, width: int = 32) -> None:
        super().__init__()
        c = int(in_shape[0])
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model("small_resnet")
class SmallResNet(nn.Module):
    """A three-stage ResNet (one basic block per stage) sized for 8x8 inputs."""

    def __init__(self, in_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        c = int(in_shape[0])
        self.stem = nn.Sequential(nn.Conv2d(c, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1), BasicBlock(width, 2 * width, 2), BasicBlock(2 * width, 4 * width, 2)
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))
