#!/usr/bin/env bash
# The GPU checks of the speed work, in one short run for a lent GPU machine (no network there;
# its python3 has torch with CUDA, tensorboard, safetensors, scipy, pytest-xdist). What this
# project needs beyond that travels as wheels in .whl/ (git-ignored). Here, once:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux2014_x86_64 -d .whl pettingzoo==1.27.0 \
#     gymnasium==1.4.0 Farama-Notifications==0.0.6 mpe2==1.1.1 pygame-ce==2.5.8 tyro==1.0.17 \
#     docstring_parser==0.18.0 typeguard==4.6.0 shtab
# then run `bash .ci/device_check.sh` there with .whl carried. It writes to $OUT (or
# runs/device_check): the batched envs' steps/s on CUDA (benchmark_batched.py --device cuda),
# the trainers' steps/s on CUDA beside the CPU (benchmark_sps.py --cuda), and the trainers'
# and batched envs' tests run on CUDA (the trainers default to CUDA where there is one).
# Each part has its own time limit, so that the figures of the first come back even when a
# later part runs out of time; about 6 minutes in all.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-runs/device_check}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 WANDB_MODE=offline MUJOCO_GL=egl SDL_VIDEODRIVER=dummy
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
mkdir -p /tmp/pkgs && ln -sfn "$PWD/envs" /tmp/pkgs/adv_envs  # envs/ is installed as adv_envs
export PYTHONPATH="/tmp/site:/tmp/pkgs:$PWD"
python3 - <<'EOF' 2>&1 | tee "$out/device.txt" || exit 1
import torch, adv_envs, adv_wrappers
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "|", torch.cuda.get_device_name())
EOF
nproc | sed 's/^/CPU cores: /' | tee -a "$out/device.txt"

echo "== 1. batched envs, CPU and CUDA"
timeout 120 python3 baselines/benchmark_batched.py --device cuda --repeats 2 --seconds 1 \
  --output "$out/batched_cuda.json" 2>&1 | tee "$out/batched_cuda.log" | tail -40

echo "== 2. trainers, CPU and CUDA rows"
timeout 240 python3 baselines/benchmark_sps.py --cuda --rounds 1 --no-compile \
  --timesteps 12000 --throughput-timesteps 256000 --attack-timesteps 12000 \
  --rows "ippo.py (30 epochs" "ippo.py throughput" "art.py k=1 (30 epochs" \
  "attack.py k=1, 1 scenario per run" "attack.py k=1, 6 scenarios stacked, --vector-backend" \
  --output "$out/trainer_sps_cuda.md" 2>&1 | tee "$out/trainer_sps_cuda.log" | tail -40

echo "== 3. the trainers' and batched envs' tests, on CUDA"
timeout 150 python3 -m pytest -q -p no:cacheprovider -n 12 --timeout 120 --durations 15 \
  -k "not wandb and not learns" tests/test_trainers.py tests/test_art.py tests/test_attack.py \
  tests/test_maddpg.py tests/test_rma3c.py tests/test_eir_mappo.py tests/test_batched_envs.py \
  tests/test_batched_threats.py tests/test_batched_vector.py 2>&1 | tee "$out/pytest_cuda.log" \
  | tail -60
