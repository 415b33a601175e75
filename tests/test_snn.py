"""Spiking-network tasks (issue 19): spike coding, synthetic events, the N-MNIST file loader, training
under the meta engine, and FastSpiker's selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlrsnet.bench import bench
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import parse_config
from mlrsnet.engine.selection import select_fastest, time_to_target
from mlrsnet.errors import ConfigError, DataMissingError
from mlrsnet.tasks import build_task
from mlrsnet.tasks.snn import latency_encode, load_nmnist, rate_encode, saccade_events

ENV = {**os.environ, "MLRSNET_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}


def test_latency_code_by_hand():
    # T = 5: intensity x spikes once at step round((1 - x) * 4); below the 0.01 threshold never.
    x = torch.tensor([[0.0, 0.005, 0.5, 1.0, 0.75]])
    spikes = latency_encode(x, time_steps=5)
    assert spikes.shape == (1, 5, 5)
    counts = spikes.sum(1)[0]
    assert counts.tolist() == [0, 0, 1, 1, 1]
    times = [int(spikes[0, :, i].nonzero()[0]) for i in (2, 3, 4)]
    assert times == [2, 0, 1]


def test_rate_code_counts():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0, 1.0, 0.5]])
    spikes = rate_encode(x, 40, g)
    counts = spikes.sum(1)[0]
    assert counts[0] == 0 and counts[1] == 40
    assert 10 <= counts[2] <= 30
    again = rate_encode(x, 40, torch.Generator().manual_seed(0))
    assert torch.equal(spikes, again), "the spike trains come from the task's seed"


def test_events_only_at_edges_and_none_on_a_constant_image():
    edge = torch.zeros(1, 8, 8)
    edge[:, :, 4:] = 1.0  # a vertical edge between columns 3 and 4
    frames = saccade_events(edge, 30, torch.Generator().manual_seed(3), max_shift=1)
    assert frames.shape == (1, 30, 2, 8, 8)
    on, off = frames[0, :, 0], frames[0, :, 1]
    assert on.sum() > 0 and off.sum() > 0, "moving an edge both ways gives ON and OFF events"
    cols = (frames[0].sum((0, 1, 2)) > 0).nonzero().flatten().tolist()
    assert set(cols) <= {3, 4}, f"events away from the edge: columns {cols}"
    flat = saccade_events(torch.full((2, 8, 8), 0.6), 30, torch.Generator().manual_seed(3))
    assert flat.sum() == 0


def _write_nmnist_file(path, events):
    """N-MNIST's on-disk format, written independently of the loader: 5 bytes per event, x, y, then
    the polarity in bit 7 of byte 3 and a 23-bit microsecond timestamp."""
    raw = bytearray()
    for x, y, p, t in events:
        raw += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(raw))


def test_nmnist_loader_round_trips_files_the_test_writes(tmp_path):
    base = tmp_path / "NMNIST"
    files = {
        ("Train", 3): [(1, 2, 1, 100), (1, 2, 1, 2000), (5, 6, 0, 4000), (33, 33, 0, 9000)],
        ("Train", 7): [(0, 0, 0, 10), (10, 20, 1, 5000)],
        ("Test", 3): [(2, 2, 1, 50), (2, 2, 0, 60), (2, 2, 0, 7000)],
    }
    for (split, digit), events in files.items():
        _write_nmnist_file(base / split / str(digit) / "00001.bin", events)
    train_x, train_y, test_x, test_y = load_nmnist(tmp_path, time_steps=2)
    assert train_x.shape == (2, 2, 2, 34, 34) and test_x.shape == (1, 2, 2, 34, 34)
    assert train_y.tolist() == [3, 7] and test_y.tolist() == [3]
    total = train_x[0].sum(0)  # over time: [polarity, y, x]
    assert total[1, 2, 1] == 2 and total[0, 6, 5] == 1 and total[0, 33, 33] == 1 and total.sum() == 4
    assert test_x[0].sum(0)[0, 2, 2] == 2 and test_x[0].sum(0)[1, 2, 2] == 1
    assert train_x[0, 0].sum() > 0 and train_x[0, 1].sum() > 0, "events spread over both time bins"


def test_missing_nmnist_is_a_one_line_error(tmp_path):
    with pytest.raises(DataMissingError, match="tonic.datasets.NMNIST"):
        load_nmnist(tmp_path, time_steps=4)


@pytest.mark.parametrize("name", ["snn_digits", "snn_events"])
def test_snn_tasks_build_and_report_spike_rate(name):
    cfg = parse_config(compose("train", [f"+task={name}", "task.time_steps=4"]), "train")
    task = build_task(cfg.task, 0, "cpu")
    x, y = next(task.train_batches(0))
    assert x.shape[1] == 4 and set(torch.unique(x).tolist()) <= {0.0, 1.0}
    model = task.build_model()
    metrics = task.evaluate(model, "meta")
    assert 0.0 <= metrics["spike_rate"] <= 1.0 and "accuracy" in metrics


def test_bad_time_steps_is_a_config_error():
    with pytest.raises(ConfigError, match="task.time_steps"):
        build_task(parse_config(compose("train", ["+task=snn_digits", "task.time_steps=1"]), "train").task, 0, "cpu")


@pytest.mark.slow
def test_one_epoch_of_snn_digits_under_the_meta_engine(tmp_path):
    """Surrogate-gradient training through time with MLR-SNet's lookahead (schedule=mlrsnet)."""
    proc = subprocess.run(
        [sys.executable, "-m", "mlrsnet.train", "+task=snn_digits", "epochs=1", "task.time_steps=4",
         "task.train_fraction=0.3", "progress=false", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["type"] == "epoch")
    assert "meta_loss" in epoch and np.isfinite(epoch["meta_loss"]), "meta steps ran"
    assert 0.0 < epoch["test_spike_rate"] < 1.0
    assert (tmp_path / "mlrsnet.pt").is_file()


def _record(schedule, seed, metas):
    history = [{"epoch": e + 1, "epoch_time": 1.0, "meta_accuracy": m} for e, m in enumerate(metas)]
    return {"schedule": schedule, "seed": seed, "status": "complete", "metric": "accuracy",
            "higher_is_better": True, "history": history}


def test_time_to_target_is_censored_when_never_reached():
    h = [{"epoch": 1, "epoch_time": 2.0, "m": 0.3}, {"epoch": 2, "epoch_time": 2.0, "m": 0.5}]
    assert time_to_target(h, "m", 0.5, True) == 2.0
    assert time_to_target(h, "m", 0.9, True) == 3.0
    assert time_to_target(h, "m", 0.9, True, unit="seconds") == 6.0


def test_selection_takes_the_significantly_faster_policy():
    recs = []
    for s in range(3):
        recs.append(_record("fixed", s, [0.5, 0.7, 0.8, 0.9, 0.95]))  # target 0.9 at epoch 4
        recs.append(_record("cosine", s, [0.6, 0.9 + 0.01 * s, 0.93, 0.95, 0.95]))  # at epoch 2
        recs.append(_record("mlrsnet", s, [0.9, 0.91, 0.91, 0.91, 0.91]))  # fastest but not accurate enough
    sel = select_fastest(recs, target=0.9, tolerance=0.01)
    assert sel["policies"]["mlrsnet"]["kept"] is False
    assert sel["simplest"] == "fixed" and sel["candidate"] == "cosine"
    assert sel["chosen"] == "cosine" and sel["p_value"] == pytest.approx(0.0, abs=1e-6)


def test_selection_keeps_the_simpler_policy_without_significance():
    recs = []
    for s, (tf, tc) in enumerate([(3, 2), (2, 3), (3, 2)]):  # cosine faster on average, not consistently
        for name, t in (("fixed", tf), ("cosine", tc)):
            recs.append(_record(name, s, [0.5] * (t - 1) + [0.95] * (6 - t)))
    sel = select_fastest(recs, target=0.9)
    assert sel["candidate"] == "cosine" and sel["p_value"] > 0.05 and sel["chosen"] == "fixed"
    # With three seeds a one-sided Wilcoxon test cannot reach p < 0.125: always the simpler policy.
    consistent = [_record(n, s, [0.5] * (t - 1) + [0.95] * (6 - t)) for s in range(3)
                  for n, t in (("fixed", 3 + s), ("cosine", 2))]
    wil = select_fastest(consistent, target=0.9, test="wilcoxon")
    assert wil["p_value"] == pytest.approx(0.125) and wil["chosen"] == "fixed"


def test_selection_rejects_bad_options():
    with pytest.raises(ConfigError, match="ttest or wilcoxon"):
        select_fastest([_record("fixed", 0, [0.9])], target=0.9, test="anova")


def test_bench_select_fastest_writes_the_choice(tmp_path):
    cfg = compose("bench", ["+task=digits_mlp", "epochs=2", "seeds=[0,1]", "schedules=[fixed,cosine]", "tune=false",
                            "select=fastest", "target_metric=0.5", "progress=false"])
    out = bench(cfg, tmp_path)
    sel = json.loads((tmp_path / "selection.json").read_text())
    assert sel["chosen"] in ("fixed", "cosine") and sel["seeds"] == [0, 1]
    assert "## Selection" in (tmp_path / "results.md").read_text()
    assert out["selection"]["chosen"] == sel["chosen"]


def test_bench_rejects_an_unknown_selection(tmp_path):
    cfg = compose("bench", ["+task=digits_mlp", "select=slowest"])
    with pytest.raises(ConfigError, match="select=.slowest. is not one of fastest; set select=fastest"):
        bench(cfg, tmp_path)
