"""Batched augmentation: each output must be a genuine crop/flip of its own input, deterministically."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mlrsnet.tasks.data.augment import augment_batch, normalize_batch

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.1)
ZERO_MEAN, UNIT_STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)


def _images(b: int = 16, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # Values start at 1 so that padding (0) is distinguishable from image content.
    return torch.randint(1, 256, (b, 3, h, w), generator=g, dtype=torch.uint8)


def _as_uint8(y: torch.Tensor) -> torch.Tensor:
    """Invert normalisation with mean 0 / std 1 back to exact uint8 values."""
    return (y * 255).round().to(torch.uint8)


def _find_transform(original: torch.Tensor, out: torch.Tensor, pad: int) -> tuple[int, int, bool]:
    """The unique (row offset, column offset, flipped) that turns ``original`` into ``out``."""
    padded = F.pad(original, (pad, pad, pad, pad))
    h, w = original.shape[-2:]
    matches = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            for flipped, candidate in ((False, crop), (True, crop.flip(-1))):
                if torch.equal(candidate, out):
                    matches.append((dy, dx, flipped))
    assert len(matches) == 1, f"output is not a unique crop/flip of its input: {matches}"
    return matches[0]


def test_output_shape_dtype_and_device() -> None:
    x = _images()
    y = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    assert y.dtype == torch.float32
    assert y.device == x.device


def test_every_sample_is_a_padded_crop_of_itself_with_varied_offsets_and_flips() -> None:
    x = _images(b=64)
    out = _as_uint8(augment_batch(x, ZERO_MEAN, UNIT_STD, torch.Generator().manual_seed(1), crop_pad=4))
    found = [_find_transform(x[i], out[i], pad=4) for i in range(len(x))]
    offsets = {(dy, dx) for dy, dx, _ in found}
    flips = {f for _, _, f in found}
    assert len(offsets) > 10, "offsets should vary per sample"
    assert all(0 <= dy <= 8 and 0 <= dx <= 8 for dy, dx in offsets)
    assert flips == {False, True}


def test_crop_shifts_a_known_pixel_and_fills_with_zero() -> None:
    x = torch.zeros(32, 1, 9, 9, dtype=torch.uint8)
    x[:, 0, 4, 4] = 255
    g = torch.Generator().manual_seed(2)
    out = _as_uint8(augment_batch(x, (0.0,), (1.0,), g, crop_pad=2, flip=False))
    shifts = set()
    for img in out[:, 0]:
        assert int(img.sum()) in (0, 255)  # the bright pixel is either still in view or cropped out
        if img.sum() > 0:
            (r, c) = (img == 255).nonzero()[0].tolist()
            assert abs(r - 4) <= 2 and abs(c - 4) <= 2
            shifts.add((r - 4, c - 4))
    assert len(shifts) > 3 and shifts != {(0, 0)}


def test_flip_only_gives_original_or_mirror() -> None:
    x = _images(b=32)
    out = _as_uint8(augment_batch(x, ZERO_MEAN, UNIT_STD, torch.Generator().manual_seed(3), crop_pad=0))
    mirrored = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))
    assert any(mirrored) and any(same)


def test_no_crop_no_flip_is_exactly_normalisation() -> None:
    x = _images()
    y = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(0), crop_pad=0, flip=False)
    assert torch.equal(y, normalize_batch(x, MEAN, STD))


def test_same_seed_same_batch_different_seed_different_batch() -> None:
    x = _images()
    a = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(7))
    b = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(7))
    c = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_normalize_values_per_channel() -> None:
    x = torch.empty(2, 3, 4, 4, dtype=torch.uint8)
    for c, v in enumerate((0, 51, 255)):
        x[:, c] = v
    y = normalize_batch(x, MEAN, STD)
    for c, v in enumerate((0, 51, 255)):
        expected = (v / 255 - MEAN[c]) / STD[c]
        assert torch.allclose(y[:, c], torch.full_like(y[:, c], expected))


def test_padding_normalises_like_a_black_pixel() -> None:
    x = torch.full((64, 3, 6, 6), 200, dtype=torch.uint8)
    y = augment_batch(x, MEAN, STD, torch.Generator().manual_seed(4), crop_pad=3, flip=False)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    black, inside = (0 - mean) / std, (200 / 255 - mean) / std
    is_black = torch.isclose(y, black.expand_as(y)).all(dim=1)
    is_inside = torch.isclose(y, inside.expand_as(y)).all(dim=1)
    assert (is_black ^ is_inside).all()
    assert is_black.any() and is_inside.any()


@pytest.mark.parametrize("bad", [torch.zeros(2, 3, 4, 4), torch.zeros(3, 4, 4, dtype=torch.uint8)])
def test_rejects_non_uint8_or_non_batched_input(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        augment_batch(bad, MEAN, STD, torch.Generator())
