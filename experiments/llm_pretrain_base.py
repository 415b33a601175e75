"""Regenerate the shipped pretrained base of the LLM fine-tuning tasks (mlrsnet/tasks/gpt_cpython_base.pt).

    OMP_NUM_THREADS=1 python experiments/llm_pretrain_base.py            # ~600 steps, minutes on one core

A tiny GPT-2 (mlrsnet.tasks.llm.BASE_CONFIG) from random initialisation, trained on the CPython
documentation's training documents; see mlrsnet.tasks.llm.pretrain_base for the recipe.
"""

from __future__ import annotations

import argparse
import json

import torch

from mlrsnet.tasks.llm import BASE_CHECKPOINT, pretrain_base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(BASE_CHECKPOINT))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    record = pretrain_base(args.out, steps=args.steps, lr=args.lr, seed=args.seed)
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
