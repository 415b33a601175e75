"""Shipped checkpoints live inside the package, are selected by a short name that no file in the working
directory can shadow, are found by a non-editable install, and are never overwritten by a run."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest
import torch

from mlrsnet.checkpoint import DEFAULT_CHECKPOINT, resolve_checkpoint, shipped_checkpoints, shipped_dir
from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.io import file_sha256
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.scheduler import MLRSNetScheduler
from mlrsnet.train import meta_train
from tests.conftest import compose


def test_short_names_resolve_inside_the_package_whatever_the_working_directory(tmp_path, monkeypatch):
    assert {"paper_cifar10_resnet18", DEFAULT_CHECKPOINT} <= set(shipped_checkpoints())
    monkeypatch.chdir(tmp_path)
    # Files named like the shipped checkpoints in the working directory do not stand in for them.
    torch.save({"weights": torch.zeros(1)}, tmp_path / "paper_cifar10_resnet18")
    torch.save({"weights": torch.zeros(1)}, tmp_path / f"{DEFAULT_CHECKPOINT}.pt")
    (tmp_path / "checkpoints").mkdir()
    torch.save({"weights": torch.zeros(1)}, tmp_path / "checkpoints" / f"{DEFAULT_CHECKPOINT}.pt")
    for name in ("paper_cifar10_resnet18", None):
        path = resolve_checkpoint(name)
        assert path.is_absolute() and path.parent == shipped_dir().resolve()
    assert len(MLRSNetScheduler(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1),
                                "paper_cifar10_resnet18", total_steps=9).nets) == 3
    # An explicit path is a path.
    assert resolve_checkpoint(f"./{DEFAULT_CHECKPOINT}.pt") == (tmp_path / f"{DEFAULT_CHECKPOINT}.pt").resolve()


def test_unknown_short_name_lists_the_shipped_ones():
    with pytest.raises(CheckpointError, match="no shipped checkpoint named 'nope'") as e:
        resolve_checkpoint("nope")
    assert "paper_cifar10_resnet18" in str(e.value) and "./nope" in str(e.value)


def test_copy_to_checkpoints_never_writes_into_the_shipped_ones(tmp_path):
    before = {p.name: file_sha256(p) for p in shipped_dir().glob("*.pt")}
    cfg = compose("train", ["+task=digits_mlp", "epochs=1", "progress=false", "copy_to_checkpoints=true",
                            f"checkpoints_dir={shipped_dir()}"])
    with pytest.raises(ConfigError, match="shipped checkpoints"):
        meta_train(cfg, tmp_path / "run")
    assert {p.name: file_sha256(p) for p in shipped_dir().glob("*.pt")} == before
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_a_non_editable_install_finds_the_shipped_checkpoints(tmp_path, built_wheel):
    wheel = built_wheel
    names = zipfile.ZipFile(wheel).namelist()
    for name in shipped_checkpoints():
        assert f"mlrsnet/checkpoints/{name}.pt" in names
    assert "mlrsnet/checkpoints/LICENSE-MLR-SNet" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import torch; from mlrsnet.schedules.scheduler import MLRSNetScheduler; from mlrsnet.checkpoint import "
            "resolve_checkpoint; opt = torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1); "
            "s = MLRSNetScheduler(opt, total_steps=9); s.step(2.3); print(resolve_checkpoint(None)); "
            "print(len(s.nets), s.get_last_lr()[0] > 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    path, result = out.stdout.strip().splitlines()
    assert path.startswith(str(site)) and result == "3 True"


def test_net_from_memory_is_not_a_name():
    torch.manual_seed(0)
    net = MLRSNet(gamma=0.5)
    sched = MLRSNetScheduler(torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1), net, scale="checkpoint")
    assert len(sched.nets) == 1


def test_a_run_under_mlrsnet_frozen_records_the_resolved_path_and_sha256(tmp_path, monkeypatch):
    from mlrsnet.engine.build import build_run
    from mlrsnet.train import validate

    monkeypatch.chdir(tmp_path)
    cfg = validate(compose("train", ["+task=digits_mlp", "epochs=1", "schedule=mlrsnet_frozen",
                                     "schedule.checkpoint=paper_cifar10_resnet18"]))
    info = build_run(cfg).info
    (record,) = info["checkpoints"]
    assert record["name"] == "paper_cifar10_resnet18"
    assert record["path"] == str(shipped_dir().resolve() / "paper_cifar10_resnet18.pt")
    assert record["sha256"] == file_sha256(record["path"])


def test_the_readme_states_every_shipped_bundle_with_its_sha256_and_gamma():
    """checkpoints/README.md's table is the catalogue users read: one row per file in mlrsnet/checkpoints/, with the
    file's sha256 and the gamma its nets store (none stored: 1)."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parent.parent / "checkpoints" / "README.md").read_text()
    for name in shipped_checkpoints():
        path = resolve_checkpoint(name)
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{name}`")), None)
        assert row is not None, f"{name} has no row in checkpoints/README.md"
        assert f"`{file_sha256(path)}`" in row, f"{name}: the README's sha256 is not the file's"
        gammas = {round(float(n.get("gamma", 1.0)), 4) for n in torch.load(path, weights_only=False)["nets"]}
        assert len(gammas) == 1 and f"| {gammas.pop():.4g}" in row, row
