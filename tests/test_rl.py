"""RL-learned LR schedules (mlrsnet/rl): the gymnasium environment, PPO training in a subprocess, the frozen
policy as ``schedule=rl`` end to end, and that neither the agent nor the policy ever sees the test split."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import TrainConfig, parse_config
from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.schedules.rl_policy import OBSERVATION, AgentSpec, FrozenPolicy, load_policy, resolve_policy, save_policy

gym = pytest.importorskip("gymnasium")  # in the dev extra; skipped only where [rl]/[dev] is not installed
sb3 = pytest.importorskip("stable_baselines3")

from mlrsnet.rl.env import LRScheduleEnv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NMF = ["+task=nmf_synthetic", "epochs=4", "progress=false", "task.rows=48", "task.cols=12", "task.rank=3",
       "task.true_rank=3", "batch_size=16"]
ENV = {**os.environ, "MLRSNET_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}


def _cfg(*extra: str, name: str = "train") -> TrainConfig:
    return parse_config(compose(name, [*NMF, *extra]), name)


def _digits(*overrides: str) -> TrainConfig:
    return parse_config(compose("train", ["+task=digits_mlp", *overrides]), "train")


def test_environment_passes_gymnasiums_check_env():
    from gymnasium.utils.env_checker import check_env

    env = LRScheduleEnv(_cfg(), AgentSpec(decisions=4))
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (len(OBSERVATION),) and obs.dtype == np.float32
    steps, done, total = 0, False, 0.0
    while not done:
        obs, reward, done, truncated, info = env.step(env.action_space.sample())
        total += reward
        steps += 1
        assert env.observation_space.contains(obs)
    assert steps == env.decisions_per_episode() == 4
    assert info["episode_return"] == pytest.approx(total)
    assert info["step"] == env.run.total_steps


def test_episode_takes_the_same_steps_as_an_uninterrupted_run():
    """Pausing the loop at every decision (Interrupted / progress) changes nothing: an agent that always
    keeps the LR reproduces a plain fixed-LR run of the same seed."""
    from mlrsnet.engine.loop import train_loop

    cfg = _cfg()
    env = LRScheduleEnv(cfg, AgentSpec(decisions=5))
    env.reset(options={"run_seed": 7})
    keep = AgentSpec().actions.index(1.0)
    done = False
    while not done:
        _, _, done, _, _ = env.step(keep)
    run = build_run(cfg, seed=7, schedule="fixed")
    train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
    assert torch.allclose(env.run.model.W, run.model.W) and torch.allclose(env.run.model.H, run.model.H)


def test_reward_is_the_decrease_of_log_meta_loss_and_the_test_split_is_never_evaluated(monkeypatch):
    from mlrsnet.tasks.nmf import NMFTask

    seen = []
    nmf_eval = NMFTask.evaluate

    def spy(self, model, split="test"):
        seen.append(split)
        return nmf_eval(self, model, split)

    monkeypatch.setattr(NMFTask, "evaluate", spy)
    env = LRScheduleEnv(_cfg(), AgentSpec(decisions=3), terminal_weight=0.5)
    _, info = env.reset(seed=0)
    v0 = info["val_loss"]
    rewards, vals = [], [v0]
    done = False
    while not done:
        _, r, done, _, info = env.step(2)
        rewards.append(r)
        vals.append(info["val_loss"])
    expected = [np.log(a) - np.log(b) for a, b in zip(vals, vals[1:], strict=False)]
    expected[-1] += 0.5 * (np.log(v0) - np.log(vals[-1]))
    assert rewards == pytest.approx(expected)
    # the meta split for the rewards; never the test split, nor the training split (the policy does not read L0)
    assert seen.count("meta") > 1 and set(seen) == {"meta"}


def _train_cli(run_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "mlrsnet.rl", "train", *NMF, "rl.total_timesteps=256", "rl.decisions=4",
           "rl.ppo.n_steps=128", "rl.ppo.batch_size=32", "rl.ppo.n_epochs=2", f"hydra.run.dir={run_dir}", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_short_ppo_training_gives_a_loadable_policy_and_resumes(tmp_path):
    run_dir = tmp_path / "rl"
    out = _train_cli(run_dir)
    assert out.returncode == 0, out.stderr[-2000:]
    policy, spec, meta = load_policy(run_dir / "policy.pt")
    assert spec.decisions == 4 and meta["task"] == "nmf_synthetic" and meta["timesteps"] == 256
    rows = (run_dir / "learning_curve.csv").read_text().splitlines()
    assert rows[0].startswith("episode,timesteps") and len(rows) - 1 == 256 // 4
    assert (run_dir / "learning_curve.png").stat().st_size > 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["episodes"] == 64 and summary["timesteps"] == 256
    assert 0 <= policy.act(np.zeros(len(OBSERVATION), np.float32)) < len(spec.actions)

    # the frozen actor is PPO's deterministic policy
    model = sb3.PPO.load(run_dir / "ppo_state.zip", device="cpu")
    obs = np.random.default_rng(0).uniform(-3, 3, (50, len(OBSERVATION))).astype(np.float32)
    ppo_actions, _ = model.predict(obs, deterministic=True)
    assert [policy.act(o) for o in obs] == list(ppo_actions)

    out = _train_cli(run_dir, "rl.ppo.n_epochs=3")
    assert out.returncode == 2 and "different config" in out.stderr  # a run directory holds one config
    out = _train_cli(run_dir, "rl.total_timesteps=384")  # the budget may grow: one more rollout
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["timesteps"] == 384


@pytest.mark.slow
def test_ppo_training_stopped_by_a_signal_resumes(tmp_path):
    run_dir = tmp_path / "rl"
    cmd = [sys.executable, "-m", "mlrsnet.rl", "train", *NMF, "rl.total_timesteps=384", "rl.decisions=4",
           "rl.ppo.n_steps=128", "rl.ppo.batch_size=32", "rl.ppo.n_epochs=2", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not (run_dir / "rl_state.json").is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 75, err[-2000:]
    stopped_at = json.loads((run_dir / "rl_state.json").read_text())["timesteps"]
    assert 128 <= stopped_at < 384
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert f"resuming {run_dir} at {stopped_at} of 384" in out.stdout
    assert json.loads((run_dir / "summary.json").read_text())["timesteps"] >= 384  # whole rollouts
    load_policy(run_dir / "policy.pt")


@pytest.mark.slow
def test_missing_rl_extra_is_a_one_line_error(tmp_path):
    code = ("import sys; sys.modules['stable_baselines3'] = None; sys.argv = ['x', 'train', '+task=nmf_synthetic', "
            f"'hydra.run.dir={tmp_path}']; from mlrsnet.rl.__main__ import main; main()")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install -e \".[rl]\"" in lines[0]


def test_unknown_command_is_a_one_line_error():
    out = subprocess.run([sys.executable, "-m", "mlrsnet.rl", "fit", "+task=nmf_synthetic"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0 and "python -m mlrsnet.rl train" in out.stderr


def _policy_file(path: Path, action: int, spec: AgentSpec) -> Path:
    """A policy that always takes ``action`` (bias only)."""
    policy = FrozenPolicy(len(OBSERVATION), len(spec.actions), (4,))
    with torch.no_grad():
        for p in policy.parameters():
            p.zero_()
        policy.head.bias[action] = 1.0
    save_policy(path, policy, spec, task="test")
    return path


@pytest.mark.slow
def test_schedule_rl_end_to_end_in_mlrsnet_train(tmp_path):
    spec = AgentSpec(decisions=4, lr_min_factor=0.01)
    path = _policy_file(tmp_path / "halve.pt", spec.actions.index(0.5), spec)
    run_dir = tmp_path / "train"
    cmd = [sys.executable, "-m", "mlrsnet.train", *NMF, "schedule=rl", f"+schedule_params.rl.policy={path}",
           f"hydra.run.dir={run_dir}"]
    out = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in steps if r.get("type") == "step"]
    lr0 = 0.1  # conf/task/nmf_synthetic.yaml
    interval = len(lrs) // 4
    # decisions at steps 0, k, 2k, 3k: the LR halves at each
    assert lrs[0] == pytest.approx(lr0 / 2) and lrs[interval] == pytest.approx(lr0 / 4)
    assert lrs[-1] == pytest.approx(lr0 / 16)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["schedule"] == "rl" and summary["metric"] == "rel_error"


def test_schedule_rl_with_the_shipped_policies_and_safe():
    for policy in ("nmf", None):
        run = build_run(_cfg("schedule=rl", "optimizer.lr=10", "+schedule_params.rl.safe=true",
                             *([f"+schedule_params.rl.policy={policy}"] if policy else [])))
        from mlrsnet.engine.loop import train_loop

        hist = train_loop(run.task, run.train_model, run.optimizer, run.driver, run.loop_config("t", progress=False))
        assert np.isfinite(hist[-1]["train_loss"])
    assert resolve_policy(None, run.task).name == "nmf_synthetic.pt"
    digits = build_run(_digits("schedule=rl", "epochs=1", "progress=false"))
    assert digits.driver.spec.actions and resolve_policy(None, digits.task).name == "digits_cnn.pt"


def test_bad_policy_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="policy=PATH"):
        build_run(_cfg("schedule=rl", f"+schedule_params.rl.policy={tmp_path / 'nope.pt'}"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_policy(bad)
    with pytest.raises(ConfigError, match="unknown config key .*temperature"):
        build_run(_cfg("schedule=rl", "+schedule_params.rl.temperature=2"))


def test_a_policy_run_under_another_optimizer_than_it_learned_warns_one_line(capsys):
    """The shipped digits policy was trained under SGD with momentum 0.9 (its file's config); schedule=rl
    on digits runs that (no warning); the NMF policy (momentum 0) on digits, or momentum 0.5, warns."""
    from mlrsnet.schedules.rl_policy import optimizer_mismatch

    base = ["schedule=rl", "epochs=1", "progress=false", "task.train_fraction=0.3"]
    build_run(_digits(*base))
    assert "warning" not in capsys.readouterr().err
    build_run(_digits(*base, "+schedule_params.rl.policy=nmf"))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nmf_synthetic.pt was trained under SGD with momentum 0" in err[0]
    assert "schedule.optimizer.momentum=0" in err[0]
    build_run(_digits(*base, "schedule.optimizer.momentum=0.5"))
    assert "momentum 0.5 (set schedule.optimizer.momentum=0.9)" in capsys.readouterr().err
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    assert "optimizer.name=sgd; this run uses adam" in optimizer_mismatch(adam, {"name": "sgd", "momentum": 0.9})
    assert optimizer_mismatch(adam, {}) is None
