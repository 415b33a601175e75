"""RL-learned LR schedules (an interpretation of the two Amazon ICLR 2023 papers; see
:mod:`mlrsnet.schedules.rl_policy`).

- :mod:`mlrsnet.schedules.rl_policy`: the agent's state and actions, the frozen policy and ``schedule=rl`` (torch only);
- :mod:`mlrsnet.rl.env`: a gymnasium environment wrapping any task of the registry (extra ``[rl]``);
- :mod:`mlrsnet.rl.agent`: PPO training with stable-baselines3 (extra ``[rl]``);
- ``python -m mlrsnet.rl train +task=NAME``: the command line (:mod:`mlrsnet.rl.__main__`).

The NMF testbed and its stability bound are tasks: :mod:`mlrsnet.tasks.nmf`.
"""
