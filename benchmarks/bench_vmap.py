"""Would batching many tiny runs in one process pay off? K runs of digits_mlp (SGD, a fixed LR, the same
batches), one after the other against all K at once with stacked weights (torch.func: vmap over
functional_call + grad), timed in the same process in interleaved rounds.

    python benchmarks/bench_vmap.py --runs 8 --steps 200 --threads 1

Prints the median over rounds of the ratio sequential / batched (above 1: batching is faster) and checks that both
give the same weights. The benchmark suite ships batching only if it is at least 2x faster here.
"""

from __future__ import annotations

import statistics
import time

import torch
from _common import compose, machine, parser, setup_torch
from torch.func import functional_call, grad, stack_module_state, vmap

from mlrsnet.tasks import build_task


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=8)
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    setup_torch(args)
    cfg = compose("digits_mlp", ["batch_size=64"])
    task = build_task(cfg.task, 0, "cpu")
    torch.manual_seed(0)
    models = [task.build_model() for _ in range(args.runs)]
    batches = []
    epoch = 0
    while len(batches) < args.steps:
        batches += list(task.train_batches(epoch))
        epoch += 1
    batches = batches[: args.steps]
    lr = 0.1

    def sequential() -> list[dict]:
        out = []
        for m in models:
            params = {k: v.detach().clone().requires_grad_(True) for k, v in m.named_parameters()}
            for x, y in batches:
                loss = torch.nn.functional.cross_entropy(functional_call(m, params, (x,)), y)
                grads = torch.autograd.grad(loss, list(params.values()))
                with torch.no_grad():
                    params = {k: (v - lr * g).requires_grad_(True) for (k, v), g in zip(params.items(), grads,
                                                                                       strict=True)}
            out.append({k: v.detach() for k, v in params.items()})
        return out

    base = models[0]

    def batched() -> list[dict]:
        params, _ = stack_module_state(models)
        params = {k: v.detach().clone() for k, v in params.items()}

        def loss_fn(p: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(functional_call(base, p, (x,)), y)

        step = vmap(grad(loss_fn), in_dims=(0, None, None))
        for x, y in batches:
            g = step(params, x, y)
            params = {k: v - lr * g[k] for k, v in params.items()}
        return [{k: v[i] for k, v in params.items()} for i in range(args.runs)]

    a, b = sequential(), batched()
    same = all(torch.allclose(a[i][k], b[i][k], atol=1e-5) for i in range(args.runs) for k in a[i])
    ratios, seq_t, bat_t = [], [], []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        sequential()
        t1 = time.perf_counter()
        batched()
        t2 = time.perf_counter()
        seq_t.append(t1 - t0)
        bat_t.append(t2 - t1)
        ratios.append((t1 - t0) / (t2 - t1))
    print(f"{machine()}\ndigits_mlp, {args.runs} runs x {args.steps} steps: sequential median "
          f"{statistics.median(seq_t):.2f} s, batched (vmap) {statistics.median(bat_t):.2f} s; "
          f"speedup {statistics.median(ratios):.2f}x (median of {args.rounds} rounds); same weights: {same}")


if __name__ == "__main__":
    main()
