"""Train an LR-scheduling agent with PPO (stable-baselines3) on :class:`mlrsnet.rl.env.LRScheduleEnv`.

Outputs in the run directory:

- ``policy.pt``: the frozen actor (:func:`mlrsnet.schedules.rl_policy.save_policy`; versioned, atomic), what
  ``schedule=rl +schedule_params.rl.policy=PATH`` runs;
- ``learning_curve.csv`` / ``learning_curve.png``: one row per finished episode (return, final and initial
  validation loss, run seed, timesteps so far);
- ``ppo_state.zip`` + ``rl_state.json``: PPO's weights and optimiser, the timesteps done and the environment's
  RNG, saved atomically after every rollout (and on SIGTERM / SIGUSR1 / SIGUSR2, then exit code 75);
- ``config.yaml``, ``environment.json``, ``summary.json``.

Seeded: PPO and the environment's episode draws come from ``seed``. Resumable: rerunning the same command
with the same run directory continues from the last saved rollout (``resume=auto``); ``rl.total_timesteps``
may change on resume (train further, or finish a stopped run where it stands). A resumed run continues
from that rollout boundary; the episode in flight when it stopped is started afresh, so the result is a
valid continuation, not bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Any

from mlrsnet.engine.config import RLConfig, parse_config
from mlrsnet.engine.figures import plot_learning_curve
from mlrsnet.engine.fingerprint import config_dict
from mlrsnet.engine.log import dump_config, environment
from mlrsnet.engine.resume import StopSignals
from mlrsnet.errors import ConfigError, RunInterrupted
from mlrsnet.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from mlrsnet.rundir import open_run_dir
from mlrsnet.schedules.rl_policy import OBSERVATION, AgentSpec, FrozenPolicy, save_policy

__all__ = ["CURVE_COLUMNS", "export_policy", "require_rl", "train_agent", "validate_rl"]

CURVE_COLUMNS = ("episode", "timesteps", "run_seed", "episode_return", "initial_val_loss", "final_val_loss",
                 "diverged", "wall_time_s")


def require_rl() -> None:
    """Raise a one-line :class:`ConfigError` when the ``[rl]`` extra (stable-baselines3, gymnasium) is missing."""
    try:
        import gymnasium  # noqa: F401
        import stable_baselines3  # noqa: F401
    except ImportError as e:
        raise ConfigError(f"RL training needs the [rl] extra ({e.name} is not installed); run "
                          "pip install -e \".[rl]\"") from None


def export_policy(model: Any, spec: AgentSpec, path: Path, hidden: tuple[int, ...], **meta: Any) -> FrozenPolicy:
    """Copy PPO's actor (``mlp_extractor.policy_net`` then ``action_net``) into a :class:`FrozenPolicy` and save
    it; the frozen policy's argmax is PPO's deterministic action."""
    frozen = FrozenPolicy(len(OBSERVATION), len(spec.actions), hidden)
    frozen.body.load_state_dict(model.policy.mlp_extractor.policy_net.state_dict())
    frozen.head.load_state_dict(model.policy.action_net.state_dict())
    save_policy(path, frozen, spec, **meta)
    return frozen


def _without_budget(cfg: dict) -> dict:
    """The config without ``rl.total_timesteps``: a resumed run may train for longer (or stop sooner)."""
    rl = {k: v for k, v in cfg["rl"].items() if k != "total_timesteps"}
    return {**cfg, "rl": rl}


def _read_curve(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def _write_curve(run_dir: Path, rows: list[dict], title: str) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CURVE_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run_dir / "learning_curve.csv", buf.getvalue())
    if rows:
        plot_learning_curve([int(r["episode"]) for r in rows], [float(r["episode_return"]) for r in rows],
                            run_dir / "learning_curve.png", title)


def validate_rl(cfg: Any) -> RLConfig:
    """The typed config of ``python -m mlrsnet.rl train`` (:func:`mlrsnet.engine.config.parse_config`)."""
    typed = parse_config(cfg, "rl")
    assert isinstance(typed, RLConfig)
    return typed


def train_agent(cfg: Any, run_dir: str | Path, config_yaml: str | None = None) -> dict:
    """Train a PPO agent on ``cfg`` (the composed ``conf/rl.yaml`` + task); write ``run_dir`` (locked while it
    runs); return the summary."""
    require_rl()
    typed = validate_rl(cfg)
    with open_run_dir(run_dir) as locked:
        return _train_agent(typed, locked, config_yaml)


def _train_agent(typed: RLConfig, run_dir: Path, config_yaml: str | None) -> dict:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from tqdm.auto import tqdm

    from mlrsnet.rl.env import LRScheduleEnv

    cfg = config_dict(typed)
    rl = typed.rl
    spec = rl.spec()
    total = rl.total_timesteps
    env = LRScheduleEnv(typed, spec, seed_range=(rl.seed_range[0], rl.seed_range[1]), safe=rl.safe,
                        terminal_weight=rl.terminal_weight, divergence_penalty=rl.divergence_penalty)
    hidden = tuple(rl.net_arch)
    ppo_kw = dict(rl.ppo)
    state_zip, state_json = run_dir / "ppo_state.zip", run_dir / "rl_state.json"
    resume = typed.resume
    saved = json.loads(state_json.read_text()) if state_json.is_file() and state_zip.is_file() else None
    if resume is True and saved is None:
        raise ConfigError(f"resume=true but {run_dir} holds no ppo_state.zip; run without resume=true to start")
    if resume is False:
        saved = None
    if saved is not None and _without_budget(saved.get("config") or {}) != _without_budget(cfg):
        raise ConfigError(f"{run_dir} holds an RL run of a different config; use a new hydra.run.dir or resume=false")
    atomic_write_text(run_dir / "config.yaml", config_yaml or dump_config(cfg))
    atomic_write_json(run_dir / "environment.json", environment())

    if saved is None:
        model = PPO("MlpPolicy", env, seed=typed.seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": {"pi": list(hidden), "vf": list(hidden)}}, **ppo_kw)
        rows: list[dict] = []
        done_steps, wall = 0, 0.0
    else:
        model = PPO.load(state_zip, env=env, device="cpu")
        env.np_random.bit_generator.state = saved["env_rng"]
        rows = _read_curve(run_dir / "learning_curve.csv")
        done_steps, wall = int(model.num_timesteps), float(saved["wall_time_s"])
        print(f"resuming {run_dir} at {done_steps} of {total} timesteps", flush=True)
    episode_len = env.decisions_per_episode()
    t0 = time.perf_counter() - wall
    title = f"PPO on {typed.task.name}: episode return"

    def save_state(timesteps: int) -> None:
        buf = io.BytesIO()
        model.save(buf)
        atomic_write_bytes(state_zip, buf.getvalue())
        atomic_write_json(state_json, {"timesteps": timesteps, "env_rng": env.np_random.bit_generator.state,
                                       "wall_time_s": time.perf_counter() - t0, "config": cfg})
        _write_curve(run_dir, rows, title)
        export_policy(model, spec, run_dir / "policy.pt", hidden, task=typed.task.name, config=cfg,
                      timesteps=timesteps, **environment())

    with StopSignals() as stop:
        bar = tqdm(total=math.ceil(total / episode_len), initial=len(rows),
                   desc=f"PPO {typed.task.name} (episodes)", unit="ep", disable=not typed.progress_bar,
                   dynamic_ncols=True)

        class Episodes(BaseCallback):
            def _on_step(self) -> bool:
                for info in self.locals.get("infos", []):
                    if "episode_return" in info:
                        rows.append({"episode": len(rows) + 1, "timesteps": self.num_timesteps,
                                     "run_seed": info["run_seed"], "episode_return": info["episode_return"],
                                     "initial_val_loss": info["initial_val_loss"],
                                     "final_val_loss": info["final_val_loss"], "diverged": bool(info.get("diverged")),
                                     "wall_time_s": round(time.perf_counter() - t0, 3)})
                        bar.update(1)
                        bar.set_postfix(ret=f"{info['episode_return']:.3f}")
                return not stop.requested()

            def _on_rollout_end(self) -> None:
                save_state(self.num_timesteps)

        if done_steps < total:
            model.learn(total_timesteps=total - done_steps, callback=Episodes(), reset_num_timesteps=saved is None,
                        progress_bar=False)
        bar.close()
        if stop.requested():
            save_state(model.num_timesteps)
            stop.forward()
            raise RunInterrupted(f"stopped by {stop.name} at {model.num_timesteps} timesteps; state saved in "
                                 f"{state_zip}: rerun the same command with hydra.run.dir={run_dir} to continue")
    save_state(model.num_timesteps)
    returns = [float(r["episode_return"]) for r in rows]
    tail = returns[-max(1, len(returns) // 5):] if returns else []
    summary = {
        "status": "complete", "task": typed.task.name, "seed": typed.seed,
        "timesteps": int(model.num_timesteps), "episodes": len(rows),
        "env_steps_per_episode": episode_len,
        "train_steps_per_episode": env.run.total_steps if env.run is not None else None,
        "total_train_steps": sum(1 for _ in rows) * (env.run.total_steps if env.run is not None else 0),
        "mean_return_first_20pct": sum(returns[: len(tail)]) / len(tail) if tail else None,
        "mean_return_last_20pct": sum(tail) / len(tail) if tail else None,
        "wall_time_s": time.perf_counter() - t0, "policy": str(run_dir / "policy.pt"), "run_dir": str(run_dir),
    }
    atomic_write_json(run_dir / "summary.json", summary)
    return summary
