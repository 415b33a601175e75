"""Target 6: our meta-training iteration against a re-creation of the reference implementation's loop.

The reference code (github.com/xjtushujun/MLR-SNet) meta-trains with this structure, re-created here
on the same model, batch, optimiser and MLR-SNet:

1. copy the model (``pseudo_net.load_state_dict(net.state_dict())``: a deepcopy here) and the
   optimiser state into a ``MetaSGD``;
2. forward the training batch through the copy, ``torch.autograd.grad(..., create_graph=True)``;
3. the LR from the LSTM on the host (loss copied to the CPU, LR copied back);
4. the functional ``MetaModule`` step: every weight replaced by ``w - lr * (momentum/wd-adjusted grad)``;
5. forward the meta batch through it, ``backward()`` through the second-order graph, Adam on the LSTM;
6. the real step: a second forward of the training batch, LR from the host LSTM read with ``.item()``,
   backward, ``optimizer.step()``.

Ours: one forward/backward, ``MetaEngine.meta_step`` (``exact``), MLR-SNet on the device,
``optimizer.step()`` (:func:`mlrsnet.engine.loop.train_loop`). Both meta-update every iteration.

    python benchmarks/bench_reference.py [--model cnn] [--threads 1 --clock cpu]

The last line holds ours / reference per iteration on ``--clock`` (below 1: ours is faster).
"""

from __future__ import annotations

import copy
import time

import _common as C
import torch
from torch import nn
from torch.func import functional_call

from mlrsnet.net import MLRSNet


class ReferenceLoop:
    """The reference implementation's iteration (see the module docstring), one meta update per call."""

    def __init__(self, trainee: C.Trainee, host_net: MLRSNet) -> None:
        self.t = trainee
        self.vnet = host_net  # on the CPU, as in the reference
        self.optimizer_vnet = torch.optim.Adam(host_net.parameters(), lr=1e-3, weight_decay=1e-4)
        self.loss_scale = trainee.task.info.loss_scale

    def _host_lr(self, loss: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
        return self.vnet(loss.detach().cpu() / self.loss_scale, state)

    def iteration(self) -> None:
        t = self.t
        device = next(t.model.parameters()).device
        batch = t.next_batch()
        # 1. copies of the model and the optimiser state
        pseudo_net = copy.deepcopy(t.model)
        pseudo_state = copy.deepcopy(t.optimizer.state_dict())
        group = pseudo_state["param_groups"][0]
        buffers = [pseudo_state["state"].get(i, {}).get("momentum_buffer") for i in group["params"]]
        # 2. forward and second-order-ready gradient on the copy
        pseudo_loss = t.task.loss(pseudo_net, batch)
        named = list(pseudo_net.named_parameters())
        grads = torch.autograd.grad(pseudo_loss, [p for _, p in named], create_graph=True)
        # 3. LR from the LSTM on the host
        lr, _ = self._host_lr(pseudo_loss, self.vnet.state)
        lr = lr.to(device)
        # 4. the MetaSGD step, weights replaced functionally
        new_weights = {}
        for (name, p), g, buf in zip(named, grads, buffers, strict=True):
            w = p.detach()
            d = g.add(w, alpha=group["weight_decay"]) if group["weight_decay"] else g
            if group["momentum"] and buf is not None:
                d = buf.mul(group["momentum"]).add(d, alpha=1 - group["dampening"])
            new_weights[name] = w - lr * d
        # 5. meta loss through the updated copy, backward into the LSTM
        meta_loss = t.task.loss(lambda *a: functional_call(pseudo_net, new_weights, a), t.task.meta_batch())
        self.optimizer_vnet.zero_grad()
        meta_loss.backward()
        self.optimizer_vnet.step()
        # 6. the real step: a second forward, the LR read on the host
        loss = t.task.train_loss(t.model, batch)
        with torch.no_grad():
            new_lr, state = self._host_lr(loss, self.vnet.state)
        self.vnet.state = state
        for g in t.optimizer.param_groups:
            g["lr"] = new_lr.item()
        t.optimizer.zero_grad()
        loss.backward()
        if t.grad_clip:
            nn.utils.clip_grad_norm_(t.model.parameters(), t.grad_clip)
        t.optimizer.step()


def main() -> None:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn", choices=sorted(C.MODELS))
    p.add_argument("--block", type=float, default=0.3, help="seconds of our iterations per timed block")
    args = p.parse_args()
    device = C.setup_torch(args)
    print(C.machine())
    task, overrides = C.MODELS[args.model]
    cfg = C.compose(task, overrides)
    ours = C.make_trainee(cfg, device, args.seed, meta={"backend": "exact"})
    ref_trainee = C.make_trainee(cfg, device, args.seed)
    reference = ReferenceLoop(ref_trainee, ref_trainee.net.cpu())
    for _ in range(3):
        ours.iteration()
        reference.iteration()
    C.sync(device)
    t0 = time.perf_counter()
    ours.iteration()
    C.sync(device)
    reps = max(1, round(args.block / (time.perf_counter() - t0)))
    timings = C.interleaved({"ours": C.repeat(ours.iteration, reps),
                             "reference": C.repeat(reference.iteration, reps)}, args.rounds, device)
    wall, cpu = C.ratios(timings.wall, "reference"), C.ratios(timings.cpu, "reference")
    ms = {k: 1e3 * C.median(v) / reps for k, v in timings.on(args.clock).items()}
    print(f"\n{args.model} ({task}, {' '.join(overrides)}), meta update every iteration; {reps} iterations per "
          f"block, {args.rounds} rounds")
    print(f"| loop | ms / iteration ({args.clock}) | ratio to reference, wall | ratio to reference, CPU time |")
    print("|---|---:|---:|---:|")
    for k in ("reference", "ours"):
        print(f"| {k} | {ms[k]:.2f} | {wall[k]:.2f}x | {cpu[k]:.2f}x |")
    r = (cpu if args.clock == "cpu" else wall)["ours"]
    print(f"target 6, ours / reference per meta-training iteration ({args.model}, {args.clock}): {r:.2f}x "
          f"({1 / r:.2f}x faster)")


if __name__ == "__main__":
    main()
