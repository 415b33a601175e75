r"""A gymnasium environment in which an agent schedules the LR of a training run of any registry task.

Documented interpretation (the papers publish no environment design; see :mod:`mlrsnet.schedules.rl_policy` for the
state and the actions):

- **Episode**: one training run, built by :func:`mlrsnet.engine.build.build_run` exactly as ``mlrsnet.train`` builds it,
  with a run seed drawn from ``seed_range`` by the environment's RNG: a random instance (``nmf_synthetic``:
  a fresh matrix per seed), initialisation and data order. The run trains through the one loop, stepped
  (:class:`mlrsnet.engine.loop.Trainer`) for a decision interval at a time, so an episode takes the same steps
  as an uninterrupted run would.
- **Step**: the action multiplies the LR (clipped to [lr_min, lr_max], and to the stability bound every step
  when ``safe``), then ``decision_interval`` training steps run.
- **Reward**: :math:`r_k = \log v_{k-1} - \log v_k`, the decrease of the log validation loss over the interval,
  where :math:`v` is the loss on the task's **meta split** (``task.evaluate(model, "meta")``; the test split
  is never evaluated). The last step adds the terminal term
  :math:`w_T (\log v_0 - \log v_T)`: the final validation loss relative to the start. A non-finite training
  or validation loss ends the episode with reward ``-divergence_penalty``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np

from mlrsnet.engine.build import Run, build_run
from mlrsnet.engine.config import ScheduleChoice, TrainConfig, parse_config
from mlrsnet.engine.loop import Trainer
from mlrsnet.schedules.drivers import with_safety
from mlrsnet.schedules.registry import get_schedule
from mlrsnet.schedules.rl_policy import OBS_CLIP, OBSERVATION, AgentDriver, AgentSpec

__all__ = ["LRScheduleEnv"]


class LRScheduleEnv(gym.Env):
    """The LR-scheduling environment (module docstring) over the training config ``cfg`` (a typed config, or a
    composed ``conf/train.yaml`` + task as a mapping); its runs train under ``schedule=fixed``, the agent setting
    the LR."""

    metadata = {"render_modes": []}

    def __init__(self, cfg: Any, spec: AgentSpec | None = None, *, seed_range: tuple[int, int] = (100, 100_000),
                 safe: bool = False, terminal_weight: float = 1.0, divergence_penalty: float = 10.0) -> None:
        super().__init__()
        typed = parse_config(cfg, "train")
        assert isinstance(typed, TrainConfig)
        fixed = ScheduleChoice("fixed", dict(get_schedule("fixed").optimizer), get_schedule("fixed").params())
        self.cfg = dataclasses.replace(typed, schedule=fixed, progress=False, log_steps=False)
        self.agent_spec = spec or AgentSpec()
        self.seed_range = (int(seed_range[0]), int(seed_range[1]))
        self.safe = bool(safe)
        self.terminal_weight = float(terminal_weight)
        self.divergence_penalty = float(divergence_penalty)
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, (len(OBSERVATION),), np.float32)
        self.action_space = gym.spaces.Discrete(len(self.agent_spec.actions))
        self.run: Run | None = None
        self.agent: AgentDriver | None = None
        self.trainer: Trainer | None = None
        self._decisions: int | None = None
        self._run_seed = -1

    def decisions_per_episode(self) -> int:
        """Agent steps in an episode that does not diverge (the run of the lowest seed of ``seed_range``)."""
        if self._decisions is None:
            from mlrsnet.tasks import build_task

            steps = build_task(self.cfg.task, self.seed_range[0], "cpu").steps_per_epoch * self.cfg.epochs
            self._decisions = -(-steps // self.agent_spec.interval(steps))
        return self._decisions

    def _val_loss(self) -> float:
        assert self.run is not None
        return float(self.run.task.evaluate(self.run.train_model, "meta")["loss"])

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        run_seed = (options or {}).get("run_seed")
        if run_seed is None:
            run_seed = int(self.np_random.integers(*self.seed_range))
        run = build_run(self.cfg, seed=int(run_seed))
        self._run_seed = int(run_seed)
        self.run = run
        self.agent = AgentDriver(run.optimizer, run.model, run.task, self.agent_spec, run.total_steps)
        driver = with_safety(self.agent, self.safe, run.optimizer, run.task, run.model, "rl")
        loop_cfg = run.loop_config("rl", progress=False, log_steps=False, eval_splits=("meta",), guard=None)
        self.trainer = Trainer(run.task, run.train_model, run.optimizer, driver, loop_cfg).init()
        self.v0 = self.v = self._val_loss()
        self.episode_return = 0.0
        return self.agent.observation(), {"run_seed": int(run_seed), "val_loss": self.v}

    def _train(self, steps: int) -> None:
        """Step the run's trainer until ``steps`` steps of the run are done (or the run ends)."""
        assert self.trainer is not None and self.agent is not None
        while not self.trainer.done and self.agent.state.steps < steps:
            self.trainer.step()
    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.run is None or self.agent is None:
            raise RuntimeError("call reset() before step()")
        agent = self.agent
        agent.act(int(action))
        self._train(agent.state.steps + agent.interval)
        v = self._val_loss()
        loss = agent.state.ema if agent.state.ema is not None else 0.0
        done = agent.state.steps >= self.run.total_steps
        info: dict[str, Any] = {"lr": agent.lr, "val_loss": v, "step": agent.state.steps}
        if not (math.isfinite(v) and math.isfinite(loss)):
            reward, done = -self.divergence_penalty, True
            info["diverged"] = True
        else:
            reward = _log(self.v) - _log(v)
            if done:
                reward += self.terminal_weight * (_log(self.v0) - _log(v))
            self.v = v
        self.episode_return += reward
        if done:
            info.update(episode_return=self.episode_return, run_seed=self._run_seed, final_val_loss=v,
                        initial_val_loss=self.v0)
        return agent.observation(), float(reward), bool(done), False, info


def _log(v: float) -> float:
    return math.log(max(v, 1e-30))  # a perfect fit (v = 0) is a finite, large reward
