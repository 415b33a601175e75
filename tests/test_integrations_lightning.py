"""MLRSNetCallback in a real PyTorch Lightning Trainer on CPU: each step's LR is the frozen net's output for that
step's loss (the paper's timing), as a hand-written loop with MLRSNetScheduler gives it."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl  # the [lightning] extra; the dev extra (CI) installs it
import torch

from mlrsnet.integrations.lightning import MLRSNetCallback
from mlrsnet.schedules.scheduler import MLRSNetScheduler


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Linear(4, 3)
        self.lrs: list[float] = []
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        self.losses.append(float(loss.detach()))
        return loss

    def on_before_optimizer_step(self, optimizer):
        self.lrs.append(float(optimizer.param_groups[0]["lr"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


def test_the_callback_sets_each_steps_lr_from_that_steps_loss(tmp_path):
    model = Tiny()
    trainer = pl.Trainer(max_epochs=3, callbacks=[MLRSNetCallback(num_classes=3)], accelerator="cpu",
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         default_root_dir=tmp_path)
    trainer.fit(model, _data())
    assert len(model.lrs) == 12
    # the same scheduler by hand, fed the same losses: step(loss) before the step that uses the LR
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    sched = MLRSNetScheduler(opt, total_steps=12, num_classes=3)
    expected = []
    for loss in model.losses:
        sched.step(torch.tensor(loss))
        expected.append(float(opt.param_groups[0]["lr"]))
    assert model.lrs == pytest.approx(expected, rel=1e-5)
    assert len(set(round(v, 6) for v in model.lrs)) > 3  # the LR follows the loss, it is not constant


def test_the_schedulers_state_goes_through_a_lightning_checkpoint(tmp_path):
    callback = MLRSNetCallback(num_classes=3)
    trainer = pl.Trainer(max_epochs=1, callbacks=[callback], accelerator="cpu", logger=False,
                         enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(Tiny(), _data())
    ckpt = next(tmp_path.rglob("*.ckpt"))
    saved = torch.load(ckpt, weights_only=False)["callbacks"]
    state = next(v for k, v in saved.items() if "MLRSNetCallback" in k)
    assert state["scheduler"]["last_epoch"] == 4
    restored = MLRSNetCallback(num_classes=3)
    restored.load_state_dict(state)
    resumed = pl.Trainer(max_epochs=2, callbacks=[restored], accelerator="cpu", logger=False,
                         enable_progress_bar=False, default_root_dir=tmp_path / "r")
    model = Tiny()
    resumed.fit(model, _data(), ckpt_path=str(ckpt))
    assert restored.scheduler is not None and restored.scheduler.last_epoch == 8
