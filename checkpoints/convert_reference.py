"""Convert the MLR-SNet authors' three published CIFAR-10 nets into the shipped bundle.

    python checkpoints/convert_reference.py "/path/to/mlr_snet 1.pth" "/path/to/mlr_snet 100.pth" \\
        "/path/to/mlr_snet 200.pth"

writes ``mlrsnet/checkpoints/paper_cifar10_resnet18.pt`` (short name ``paper_cifar10_resnet18``): the nets
after epochs 1, 100 and 200 of 200 of meta-training on CIFAR-10 with ResNet-18 (Shu et al., TPAMI 2022;
github.com/xjtushujun/MLR-SNet, MIT license: see checkpoints/README.md and LICENSE-MLR-SNet). Each is
read by :func:`mlrsnet.checkpoint.load_nets`, which recognises the authors' keys; the weights are stored as in
their files (rows unchanged), with the cell of the authors' meta-test code (``reading="meta_test"``: no
forget-gate shift, gates input, forget, candidate, output), and the bundle is marked ``reference_weights`` so
that ``reading=meta_train`` (their meta-train cell) applies to it too. The files carry no gamma, so each net's
gamma is 1 (transfer recomputes it on the task).
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlrsnet.checkpoint import load_nets, save_bundle, shipped_dir
from mlrsnet.io import file_sha256

NAME = "paper_cifar10_resnet18"
EPOCHS = [1, 100, 200]


def main() -> None:
    sources = [Path(p) for p in sys.argv[1:]]
    if len(sources) != len(EPOCHS):
        raise SystemExit(f"usage: python checkpoints/convert_reference.py <epoch 1 .pth> <epoch 100 .pth> "
                         f"<epoch 200 .pth> (got {len(sources)} files)")
    nets = [load_nets(p, reading="meta_test")[0][0] for p in sources]
    dest = shipped_dir() / f"{NAME}.pt"
    save_bundle(dest, nets, EPOCHS, task="cifar10_resnet", num_classes=10, loss_scale=1.0, reference_weights=True,
                source="github.com/xjtushujun/MLR-SNet meta-test/ (MIT license; Shu, Zhu, Zhao, Meng, Xu, "
                       "MLR-SNet: Transferable LR Schedules for Heterogeneous Tasks, TPAMI 2022)",
                source_files=[{"name": p.name, "sha256": file_sha256(p)} for p in sources])
    print(f"wrote {dest} (sha256 {file_sha256(dest)})")


if __name__ == "__main__":
    main()
