r"""RL-learned LR schedules: the agent's state, its LR actions, and a frozen policy as an LR driver
(``schedule=rl``).

The two ICLR 2023 papers this follows (Amazon: "Efficient learning rate schedules for stochastic
non-negative matrix factorization via reinforcement learning" and "Learned learning rate schedules for deep
neural network training using reinforcement learning") publish only their abstracts: a PPO agent that emits
LR schedules. Their state, action, reward and episode design are **not published**; what follows is this
project's documented interpretation.

- Decisions: every ``decision_interval`` steps (null: ``ceil(total_steps / decisions)``, so that a policy makes the
  same number of decisions on a run of any length), at steps 0, k, 2k, ...
- State (:class:`LRObservation`, 7 numbers, scale-free, clipped to [-10, 10]): progress t/T; log(lr / lr0);
  log(EMA(loss) / loss_1) (the EMA of the training loss over the first step's loss); the change of
  log EMA(loss) since the last decision; log(grad norm / first grad norm); log(lr / eta_max) with eta_max the
  task's stability bound (:mod:`mlrsnet.tasks.nmf`) where one exists, else 0; and 1 if the task has a bound,
  else 0. Before the first step every feature but the last is 0.
- Action: an index into ``actions`` (default {0.5, 0.8, 1, 1.25, 2}), an LR multiplier:
  lr <- clip(lr * a, lr_min_factor * lr0, lr_max_factor * lr0); with ``safe`` every step's LR is further
  clipped to the bound (:class:`mlrsnet.schedules.drivers.SafeDriver`).
- Reward and episodes: :mod:`mlrsnet.rl.env`.

:class:`AgentDriver` is the one driver behind both the environment (the agent acts between steps) and
``schedule=rl`` (a frozen :class:`FrozenPolicy` acts at the same points), so a policy sees in deployment
exactly the state it was trained on. A policy file (:func:`save_policy`, kind ``rl_policy``, versioned and
written atomically) holds the actor MLP taken out of stable-baselines3's PPO and the :class:`AgentSpec` it was
trained with; running it needs torch only.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mlrsnet.errors import CheckpointError, ConfigError
from mlrsnet.io import load, save
from mlrsnet.schedules.base import LRDriver, set_lr
from mlrsnet.tasks.base import Task

__all__ = [
    "DEFAULT_ACTIONS", "OBSERVATION", "SHIPPED_POLICIES", "AgentDriver", "AgentSpec", "FrozenPolicy",
    "LRObservation", "build_policy_driver", "load_policy", "resolve_policy", "save_policy",
]

DEFAULT_ACTIONS = (0.5, 0.8, 1.0, 1.25, 2.0)
OBSERVATION = ("progress", "log_lr_ratio", "log_loss_ratio", "log_loss_change", "log_grad_norm_ratio",
               "log_lr_over_bound", "has_bound")
OBS_CLIP = 10.0
# Shipped policies (package data, mlrsnet/schedules/policies/; README.md there has the commands that made them).
SHIPPED_POLICIES = {"nmf": "nmf_synthetic.pt", "digits": "digits_cnn.pt"}


@dataclass
class AgentSpec:
    """How an agent observes and acts; stored in a policy file and reused when it is deployed."""

    actions: tuple[float, ...] = DEFAULT_ACTIONS
    decision_interval: int | None = None
    decisions: int = 20
    lr_min_factor: float = 1e-3
    lr_max_factor: float = 10.0
    ema_beta: float = 0.9

    def __post_init__(self) -> None:
        self.actions = tuple(float(a) for a in self.actions)
        if not self.actions or any(not a > 0 for a in self.actions):
            raise ConfigError(f"rl.actions must be positive LR multipliers, got {list(self.actions)}")
        if self.decision_interval is not None and int(self.decision_interval) < 1:
            raise ConfigError(f"rl.decision_interval must be >= 1 or null, got {self.decision_interval}")
        if int(self.decisions) < 1:
            raise ConfigError(f"rl.decisions must be >= 1, got {self.decisions}")
        if not 0 < self.lr_min_factor <= 1 <= self.lr_max_factor:
            raise ConfigError(f"need 0 < rl.lr_min_factor <= 1 <= rl.lr_max_factor, got {self.lr_min_factor} and "
                              f"{self.lr_max_factor}")
        if not 0 <= self.ema_beta < 1:
            raise ConfigError(f"rl.ema_beta must be in [0, 1), got {self.ema_beta}")

    def interval(self, total_steps: int) -> int:
        """Steps between decisions in a run of ``total_steps`` steps."""
        if self.decision_interval is not None:
            return int(self.decision_interval)
        return max(1, -(-int(total_steps) // int(self.decisions)))  # ceil: at most `decisions` decisions


@dataclass
class LRObservation:
    """The agent's state (module docstring), updated once per training step."""

    total_steps: int
    has_bound: bool
    ema_beta: float = 0.9
    steps: int = 0
    loss_ref: float | None = None
    ema: float | None = None
    ema_at_decision: float | None = None
    grad_ref: float | None = None
    grad_norm: float | None = None
    bound: float | None = None
    extra: dict = field(default_factory=dict)

    def update(self, loss: float, grad_norm: float, bound: float | None) -> None:
        """Record one step's training loss, gradient norm and stability bound (None: unknown)."""
        if self.loss_ref is None:
            self.loss_ref = self.ema = self.ema_at_decision = max(loss, 1e-30)
            self.grad_ref = max(grad_norm, 1e-30)
        else:
            self.ema = self.ema_beta * self.ema + (1 - self.ema_beta) * loss
        self.grad_norm, self.bound = grad_norm, bound
        self.steps += 1

    def mark(self) -> None:
        """A decision was taken: the loss change of the next observation is measured from here."""
        self.ema_at_decision = self.ema

    def observe(self, lr: float, lr0: float) -> np.ndarray:
        def log_ratio(a: float | None, b: float | None) -> float:
            if a is None or b is None:
                return 0.0
            if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
                return OBS_CLIP if not math.isfinite(a) or b <= 0 else -OBS_CLIP
            return math.log(a / b)

        obs = [
            self.steps / max(1, self.total_steps),
            log_ratio(lr, lr0),
            log_ratio(self.ema, self.loss_ref),
            log_ratio(self.ema, self.ema_at_decision),
            log_ratio(self.grad_norm, self.grad_ref),
            log_ratio(lr, self.bound) if self.bound is not None else 0.0,
            1.0 if self.has_bound else 0.0,
        ]
        return np.clip(np.nan_to_num(np.asarray(obs, dtype=np.float32), nan=OBS_CLIP), -OBS_CLIP, OBS_CLIP)


class AgentDriver(LRDriver):
    """The LR is lr0 times the product of the multipliers chosen so far, clipped to [lr_min, lr_max].

    ``decide(observation) -> action`` (a frozen policy) acts at every decision step, in ``before_step`` before
    the step's own loss is recorded; without it the environment calls :meth:`act` between steps at the same
    points. Every step records the loss, the gradient norm and the task's stability bound for the state: two
    or three host reads per step, a cost a GPU run notices and the CPU-scale tasks here do not."""

    name = "rl"

    def __init__(self, optimizer: torch.optim.Optimizer, model: nn.Module, task: Task, spec: AgentSpec,
                 total_steps: int, decide: Any = None) -> None:
        self.optimizer, self.model, self.task, self.spec = optimizer, model, task, spec
        self.decide = decide
        self.lr0 = float(optimizer.param_groups[0]["lr"])
        self.scales = [float(g["lr"]) / self.lr0 for g in optimizer.param_groups]
        self.lr = self.lr0
        self.total_steps = int(total_steps)
        self.interval = spec.interval(total_steps)
        has_bound = type(task).stability_bound is not Task.stability_bound
        self.state = LRObservation(self.total_steps, has_bound, spec.ema_beta)
        self.actions_taken: list[int] = []

    def observation(self) -> np.ndarray:
        return self.state.observe(self.lr, self.lr0)

    def act(self, action: int) -> None:
        """Multiply the LR by ``actions[action]``, clipped to [lr_min_factor, lr_max_factor] * lr0."""
        a = self.spec.actions[int(action)]
        low, high = self.spec.lr_min_factor * self.lr0, self.spec.lr_max_factor * self.lr0
        self.lr = min(max(self.lr * a, low), high)
        self.state.mark()
        self.actions_taken.append(int(action))

    def before_step(self, loss: torch.Tensor) -> None:
        if self.decide is not None and self.state.steps % self.interval == 0:
            self.act(self.decide(self.observation()))
        set_lr(self.optimizer, self.lr, self.scales)
        grads = [p.grad.detach().norm() for p in self.model.parameters() if p.grad is not None]
        grad_norm = float(torch.linalg.vector_norm(torch.stack(grads))) if grads else 0.0
        bound = self.task.stability_bound(self.model) if self.state.has_bound else None
        self.state.update(float(loss.detach()), grad_norm, bound)

    def state_dict(self) -> dict:
        return {"lr": self.lr, "observation": asdict(self.state), "actions_taken": list(self.actions_taken)}

    def load_state_dict(self, state: dict) -> None:
        self.lr = float(state["lr"])
        self.state = LRObservation(**state["observation"])
        self.actions_taken = list(state["actions_taken"])

    def scale_lr(self, optimizer: torch.optim.Optimizer, factor: float) -> None:
        self.lr *= factor
        self.lr0 *= factor


class FrozenPolicy(nn.Module):
    """PPO's actor as a plain MLP: observation -> action logits; :meth:`act` takes the most likely action
    (the deterministic policy)."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (32, 32)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_actions)
        self.hidden = tuple(int(h) for h in hidden)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(obs))

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> int:
        return int(self(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0)).argmax(1))


def save_policy(path: str | os.PathLike, policy: FrozenPolicy, spec: AgentSpec, **meta: Any) -> None:
    """Write a policy file (checkpoint kind ``rl_policy``, versioned, atomic): the actor's weights, its
    architecture, the observation layout and the :class:`AgentSpec`, plus ``meta`` (task, config, versions)."""
    save(path, "rl_policy", {
        "state_dict": {k: v.detach().cpu() for k, v in policy.state_dict().items()},
        "hidden": list(policy.hidden), "observation": list(OBSERVATION), "spec": asdict(spec), **meta,
    })


def resolve_policy(policy: str | os.PathLike | None, task: Task) -> Path:
    """A policy path: an existing file, a shipped policy's name (:data:`SHIPPED_POLICIES`), or, for None, the
    policy shipped for the task's family (``nmf`` for the NMF tasks, else ``digits``)."""
    if policy is None:
        policy = "nmf" if task.info.metric == "rel_error" else "digits"
    if str(policy) in SHIPPED_POLICIES:
        return Path(str(resources.files("mlrsnet.schedules") / "policies" / SHIPPED_POLICIES[str(policy)]))
    path = Path(policy)
    if not path.is_file():
        raise ConfigError(f"schedule rl: policy {policy} is neither a file nor a shipped policy; pass "
                          f"policy=PATH to a policy.pt of python -m mlrsnet.rl train, or one of "
                          f"{', '.join(SHIPPED_POLICIES)}")
    return path


def load_policy(path: str | os.PathLike) -> tuple[FrozenPolicy, AgentSpec, dict]:
    """A policy file -> (frozen policy in eval mode, its spec, its metadata)."""
    obj = load(path, "rl_policy")
    try:
        if tuple(obj["observation"]) != OBSERVATION:
            raise KeyError("observation layout")
        spec = AgentSpec(**{**obj["spec"], "actions": tuple(obj["spec"]["actions"])})
        policy = FrozenPolicy(len(OBSERVATION), len(spec.actions), tuple(obj["hidden"]))
        policy.load_state_dict(obj["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"policy {path} does not match this version's RL policy layout ({first}); "
                              "re-create it with python -m mlrsnet.rl train") from None
    policy.eval()
    for p in policy.parameters():
        p.requires_grad_(False)
    return policy, spec, {k: v for k, v in obj.items() if k != "state_dict"}


def build_policy_driver(optimizer: torch.optim.Optimizer, model: nn.Module, task: Task, total_steps: int,
                        policy_ref: str | os.PathLike | None) -> AgentDriver:
    """``schedule=rl``: a frozen policy (``policy_ref``: path or shipped name; see :func:`resolve_policy`)
    drives the LR from the optimiser's LR, with the spec it was trained with."""
    path = resolve_policy(policy_ref, task)
    policy, spec, meta = load_policy(path)
    mismatch = optimizer_mismatch(optimizer, ((meta.get("config") or {}).get("optimizer")) or {})
    if mismatch:
        print(f"warning: schedule rl: policy {path.name} {mismatch}", file=sys.stderr, flush=True)
    return AgentDriver(optimizer, model, task, spec, total_steps, decide=policy.act)


def optimizer_mismatch(optimizer: torch.optim.Optimizer, trained: dict[str, Any]) -> str | None:
    """How the run's optimiser differs from the one a policy was trained under (its file's
    ``config.optimizer``): the optimiser's name, or SGD's momentum; None when they agree or the file does
    not say. A policy's actions were learned for the LR's effect under that optimiser."""
    name = str(trained.get("name") or "").lower()
    ours = type(optimizer).__name__.lower()
    if name and name != ours:
        return f"was trained under optimizer.name={name}; this run uses {ours}"
    momentum = trained.get("momentum")
    group = optimizer.param_groups[0]
    if name == "sgd" and momentum is not None and abs(float(group.get("momentum", 0.0)) - float(momentum)) > 1e-12:
        return (f"was trained under SGD with momentum {float(momentum):g}; this run has momentum "
                f"{float(group.get('momentum', 0.0)):g} (set schedule.optimizer.momentum={float(momentum):g})")
    return None
