"""`python -m mlrsnet.plot RUN_DIR` writes valid PNGs: LR against iteration, loss and test metric against
epoch and, for meta-training runs, MLR-SNet's output against its input loss at the snapshots."""

from __future__ import annotations

import pytest
from PIL import Image

from mlrsnet.engine.resume import snapshot_epochs
from mlrsnet.plot import main, plot_run
from mlrsnet.train import meta_train
from tests.conftest import compose, run_cli

TINY = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "epochs=2", "progress=false"]


def assert_png(path) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 200 and image.size[1] > 200


def test_snapshot_epochs_are_evenly_spaced():
    assert snapshot_epochs(200, 5) == {0, 50, 100, 150, 200}
    assert snapshot_epochs(2, 5) == {0, 1, 2}
    assert snapshot_epochs(7, 1) == {7}
    assert snapshot_epochs(7, 0) == set()


@pytest.fixture(scope="module")
def meta_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("meta") / "run"
    meta_train(compose(overrides=[*TINY, "snapshots=3"]), run)
    return run


@pytest.mark.slow
def test_meta_training_run_gets_all_three_figures(meta_run, tmp_path):
    assert sorted(p.name for p in (meta_run / "snapshots").iterdir()) == [
        "mlrsnet_epoch0000.pt", "mlrsnet_epoch0001.pt", "mlrsnet_epoch0002.pt"]
    written = plot_run(meta_run, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["curves.png", "lr.png", "mlrsnet_response.png"]
    for path in written:
        assert_png(path)


@pytest.mark.slow
def test_cli_writes_into_the_run_directory(meta_run):
    r = run_cli(["mlrsnet.plot", str(meta_run)], cwd=meta_run)
    assert r.returncode == 0, r.stderr[-2000:]
    for name in ("lr.png", "curves.png", "mlrsnet_response.png"):
        assert_png(meta_run / "plots" / name)
        assert str(meta_run / "plots" / name) in r.stdout


def test_fixed_lr_run_without_step_records(tmp_path, capsys):
    run = tmp_path / "sweep" / "0_seed=0"
    meta_train(compose(overrides=[*TINY, "schedule=fixed", "log_steps=false"]), run)
    assert main([str(tmp_path / "sweep")]) == 0  # a sweep directory: every run below it
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["curves.png", "lr.png"]
    for path in (run / "plots").iterdir():
        assert_png(path)


def test_not_a_run_directory_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no runs (metrics.jsonl) under")


@pytest.mark.slow
def test_a_sweep_directory_gets_an_overlay_of_every_run(tmp_path):
    for seed in (0, 1):
        meta_train(compose(overrides=[*TINY, f"seed={seed}", "schedule=fixed"]), tmp_path / "sweep" / f"{seed}")
    assert main([str(tmp_path / "sweep")]) == 0
    assert_png(tmp_path / "sweep" / "plots" / "overlay.png")


def test_a_transfer_run_plots_its_comparison_on_a_log_scale_with_the_swaps():
    from mlrsnet.engine.figures import swap_steps

    assert swap_steps({"num_nets": 3, "steps": 90}) == [30, 60]
    assert swap_steps({"num_nets": 1, "steps": 90}) == [] and swap_steps({}) == []


@pytest.mark.slow
def test_transfer_comparison_overlay(tmp_path):
    from mlrsnet.transfer import transfer

    transfer(compose("transfer", ["+query=digits_mlp", "task.train_fraction=0.3", "epochs=2", "progress=false",
                                  "compare=[cosine]"]), tmp_path / "t")
    written = [str(p) for p in plot_run(tmp_path / "t")]
    assert str(tmp_path / "t" / "plots" / "comparison" / "overlay.png") in written
    assert_png(tmp_path / "t" / "plots" / "comparison" / "overlay.png")


def test_the_overlay_marks_the_swaps_on_a_log_lr_axis(tmp_path, monkeypatch):
    import json

    import mlrsnet.engine.figures as figures

    runs = {}
    for name, lrs in {"mlrsnet (frozen)": [0.3, 0.3, 0.01, 0.01, 0.002, 0.002], "cosine": [0.1, 0.09, 0.07, 0.04,
                                                                                         0.01, 0.001]}.items():
        run = tmp_path / name.split()[0]
        run.mkdir()
        lines = [{"type": "step", "step": i, "epoch": i // 3 + 1, "lr": lr, "loss": 1.0} for i, lr in enumerate(lrs)]
        lines += [{"type": "epoch", "epoch": e, "step": 3 * e, "lr_mean": 0.1, "test_accuracy": 0.5 + 0.1 * e}
                  for e in (1, 2)]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        runs[name] = run
    seen = {}
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: seen.setdefault("fig", fig) and path)
    figures.plot_overlay(runs, tmp_path / "out", "t", swaps=[2, 4])
    lr_ax = seen["fig"].axes[0]
    assert lr_ax.get_yscale() == "log"
    swaps = [line.get_xdata()[0] for line in lr_ax.get_lines() if line.get_linestyle() == "--"]
    assert swaps == [2, 4]
    assert "net swap" in [t.get_text() for t in seen["fig"].legends[0].get_texts()]
