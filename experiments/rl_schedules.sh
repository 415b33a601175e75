#!/usr/bin/env bash
# The commands behind experiments/rl_schedules.md, in the order they ran (repository root, venv active,
# MLRSNET_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS=1; a 2-core machine shared with 7 other jobs).
set -euo pipefail
export MLRSNET_OFFLINE=1 MPLBACKEND=Agg OMP_NUM_THREADS=1 WANDB_MODE=offline

# 1. The two shipped policies (PPO budgets kept small: CPU is scarce). Episode run seeds come from
#    rl.seed_range=[100, 100000), so seeds 0, 1, 2 below are held-out instances / initialisations.
python -m mlrsnet.rl train +task=nmf_synthetic seed=0 rl.total_timesteps=4000 hydra.run.dir=runs/rl/nmf_synthetic_ship
python -m mlrsnet.rl train +task=digits_cnn seed=0 epochs=3 rl.decisions=8 rl.total_timesteps=320 \
    rl.ppo.n_steps=80 rl.ppo.batch_size=40 hydra.run.dir=runs/rl/digits_cnn_ship
cp runs/rl/nmf_synthetic_ship/policy.pt mlrsnet/schedules/policies/nmf_synthetic.pt
cp runs/rl/digits_cnn_ship/policy.pt mlrsnet/schedules/policies/digits_cnn.pt

# 2. NMF, held-out instances (seeds 0, 1, 2): every schedule's base LR (0.1) tuned on the meta split over
#    x1/3/5/8 (a first pass over x0.3/1/3 chose x3 for every schedule, the edge of that grid). The baselines
#    ran while the policies trained; rl joined the same out_dir (one table, same fingerprint) afterwards.
python -m mlrsnet.bench +task=nmf_synthetic 'schedules=[fixed,step,exponential,cosine,greedy,sgd_hd]' \
    'lr_grid=[1,3,5,8]' target_metric=null progress=false out_dir=runs/rl_exp/nmf
python -m mlrsnet.bench +task=nmf_synthetic 'schedules=[rl]' 'lr_grid=[1,3,5,8]' target_metric=null progress=false \
    out_dir=runs/rl_exp/nmf
# the stability bound itself as the LR (fixed LR 1000, clipped to the bound at every step)
python -m mlrsnet.bench +task=nmf_synthetic 'schedules=[fixed]' optimizer.lr=1000 +schedule_params.fixed.safe=true \
    tune=false target_metric=null progress=false out_dir=runs/rl_exp/nmf_bound

# 3. The digits-trained policy vs cosine and MLR-SNet (meta-trained in place), no LR tuning (CPU time),
#    shortened runs. Rerun on 2026-12-02, alone on the machine, under issue 11's schedule group (each schedule
#    with its own optimiser: SGDM 0.9 for rl and cosine, momentum 0 under MLR-SNet) and the language-model
#    gamma from the initial perplexity (net.gamma_from=auto); the first run (2026-12-01) predated both.
python -m mlrsnet.bench +task=digits_cnn epochs=10 'schedules=[rl,cosine,mlrsnet]' tune=false progress=false \
    out_dir=runs/rl_exp/digits
python -m mlrsnet.bench +task=text_lstm_cpython epochs=1 task.max_chars=100000 'schedules=[rl,cosine,mlrsnet]' \
    tune=false target_metric=null progress=false out_dir=runs/rl_exp/text

# 4. Is x8 (LR 0.8) the best fixed LR, or only the end of the grid?
python -m mlrsnet.bench +task=nmf_synthetic 'schedules=[fixed]' 'lr_grid=[8,12,16]' target_metric=null progress=false \
    out_dir=runs/rl_exp/nmf_fixed_wide

# 5. The digits policy acts like an exponential decay (x0.8 per decision, 8 decisions): the same decay by hand,
#    0.8^8 over the 180 steps of the run (gamma 0.990112 per step). Rerun on 2026-12-02 with step 3.
python -m mlrsnet.bench +task=digits_cnn epochs=10 'schedules=[exponential]' +schedule_params.exponential.gamma=0.990112 \
    tune=false progress=false out_dir=runs/rl_exp/digits_exp

# 6. Copy the tables as the bench wrote them; the agents' cost against the runs they schedule.
for d in nmf nmf_bound nmf_fixed_wide digits digits_exp text; do
    mkdir -p experiments/rl_schedules/$d
    cp runs/rl_exp/$d/results.md runs/rl_exp/$d/results.csv runs/rl_exp/$d/tuning.csv experiments/rl_schedules/$d/
    cp runs/rl_exp/$d/lr_curves.png experiments/rl_schedules/$d/ 2>/dev/null || true
done
for a in nmf_synthetic_ship digits_cnn_ship; do
    mkdir -p experiments/rl_schedules/$a
    cp runs/rl/$a/learning_curve.csv runs/rl/$a/learning_curve.png runs/rl/$a/summary.json experiments/rl_schedules/$a/
done
python experiments/rl_schedules_cost.py > experiments/rl_schedules/cost.md
