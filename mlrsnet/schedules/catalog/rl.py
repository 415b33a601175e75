"""``schedule=rl``: a frozen PPO policy multiplies the LR every few steps (:mod:`mlrsnet.schedules.rl_policy`;
an interpretation of the two Amazon ICLR 2023 papers)."""

from dataclasses import dataclass

from mlrsnet.schedules.catalog._torch import SGDM
from mlrsnet.schedules.rl_policy import build_policy_driver
from mlrsnet.schedules.spec import BuildContext, Built, Schedule, ScheduleParams
from mlrsnet.typed import setting


@dataclass
class RLParams(ScheduleParams):
    policy: str | None = setting(None, "path to a policy.pt of `python -m mlrsnet.rl train`, or nmf / digits "
                                 "(shipped); null: the shipped policy of the task's family (nmf for NMF tasks, else "
                                 "digits)")


def _build(ctx: BuildContext, params: RLParams) -> Built:
    for group in ctx.optimizer.param_groups:
        group["lr"] = float(group["lr"]) * ctx.lr_multiplier
    driver = build_policy_driver(ctx.optimizer, ctx.model, ctx.task, ctx.total_steps, params.policy)
    return Built(ctx.optimizer, driver)


# SGDM where the task leaves momentum open, as the policies train (conf/rl.yaml's base schedule is fixed, SGDM);
# the policy starts from optimizer.lr.
SCHEDULE = Schedule(
    name="rl", summary="a frozen PPO policy multiplies the LR every few steps",
    reference="an interpretation of Xiong et al. and Subramanian et al., Amazon, ICLR 2023", kind="policy",
    params=RLParams, optimizer=SGDM, simplicity=240, build=_build,
)
