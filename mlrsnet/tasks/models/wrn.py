"""Wide Residual Networks (Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016).

Layout as in the authors' code and its PyTorch port xternalz/WideResNet-pytorch: a 16-channel 3x3 stem,
three stages of (depth - 4) / 6 pre-activation basic blocks with widths 16k, 32k, 64k, dropout between
the two convolutions of a block, a final BN-ReLU, global average pooling and a linear classifier.
WRN-28-10 has 36,479,194 parameters for 10 classes.
"""

from __future__ import annotations

import torch
from torch import nn

from mlrsnet.errors import ConfigError
from mlrsnet.tasks.models.registry import register_model


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-[dropout]-BN-ReLU-conv3x3 with identity or 1x1 projection shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        # When the shape changes, the projection reads the activated input (as in the authors' code).
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.dropout(torch.relu(self.bn2(out))))
        return out + shortcut


@register_model("wrn")
class WideResNet(nn.Module):
    """WRN-``depth``-``widen_factor``; ``depth`` must be 6n + 4 (e.g. ``depth=16, widen_factor=4``)."""

    def __init__(self, depth: int = 28, widen_factor: int = 10, dropout: float = 0.0,
                 in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0 or depth < 10:
            raise ConfigError(f"WideResNet depth must be 6n+4 with n >= 1 (e.g. 16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.stem = nn.Conv2d(int(in_shape[0]), widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        c_in = widths[0]
        for i, c_out in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(WideBlock(c_in, c_out, 2 if (i > 0 and j == 0) else 1, dropout))
                c_in = c_out
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(c_in, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


@register_model("wrn28_10")
def wrn28_10(in_shape: tuple[int, ...] = (3, 32, 32), num_classes: int = 10,
             dropout: float = 0.0) -> WideResNet:
    """WRN-28-10 (36,479,194 parameters for 10 classes); the WRN paper uses ``dropout=0.3``."""
    return WideResNet(28, 10, dropout=dropout, in_shape=in_shape, num_classes=num_classes)
