#!/usr/bin/env bash
# Every GPU step of a session in ONE call of the device tool (about 15 minutes of device time a session):
#
#   cp -r ../shared/fixtures shared/   # here: the Gpu tests' diffusers fixtures (git ignores shared/)
#   tools/gpu-session-pack             # here, where .NET is: .gpu/ with the runtime, apps.tar.xz and mnist.tar.xz
#   bash bench/gpu/session.sh          # there: the device tool's run, carry [".gpu", "shared"], timeout_s <= 600
#
# 1. unpacks the packed apps (bench, tests, CLI), MNIST and the .NET runtime, links libcuda.so, and stops unless
#    ILGPU chooses CUDA (never times the CPU by accident);
# 2. the side-by-side run against PyTorch (bench/gpu/run.sh: SGEMM, Langevin update, U-Net S32/cifar10 at batches 1
#    and 64, DDPM 1000 steps at batch 1, annealed Langevin), alone on the GPU: its timings are the claims;
# 3. the Gpu-category tests;
# 4. per-kernel profiles (POSTERIORGPU_PROFILE=1) of 50 DDPM steps at batch 1 and of 20 training steps (PROFILE_S > 0);
# 5. Figure 4 of Xun, Gupta and Price at the paper's budget (1,000 levels of one step), one task at a time;
# 6. training of the shipped MNIST model's continuation (TRAIN_FROM), stopped with SIGINT at its limit, which saves
#    the state; TRAIN_UNTIL gives it whatever time is left;
# then packs what 3-6 wrote into $OUT/rest.tar.gz. Each phase has its limit (the variables below, 0 skips a phase),
# so the whole call ends inside the tool's limit; each result reaches $OUT as soon as it exists. The 2026-12-04 calls:
#   bash bench/gpu/session.sh                                             (then with PHASE3_S=240: 3, 5, 6 side by side)
#   TESTS_S=120 PROFILE_S=60 FIGURE4_S=75 FIGURE4_TASKS=inpaint70 TRAIN_FROM=.gpu/mnist-unet-resume TRAIN_UNTIL=385 \
#     bash bench/gpu/session.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$(mktemp -d)}
PHASE2_S=${PHASE2_S:-250}
TESTS_S=${TESTS_S:-120}          # the Gpu-category tests
PROFILE_S=${PROFILE_S:-0}         # each profiled run (0: none)
FIGURE4_S=${FIGURE4_S:-240}       # Figure 4, the tasks in FIGURE4_TASKS
FIGURE4_TASKS=${FIGURE4_TASKS:-"inpaint50 superres4 deblur inpaint30 inpaint70"}
FIGURE4_PRIOR_T=${FIGURE4_PRIOR_T:-10}   # the prior score's timestep (t = 50 was measured on 2026-12-04; t = 10 is owed)
TRAIN_S=${TRAIN_S:-0}             # training (0: none)
TRAIN_FROM=${TRAIN_FROM:-models/mnist-unet}   # the shipped model, resumed from its training state (its README)
log="$OUT/session.log"
exec > >(tee -a "$log") 2>&1
t0=$(date +%s)
say() { echo "== $(( $(date +%s) - t0 )) s: $*"; }
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1 POSTERIORGPU_DEVICE=cuda DOTNET_CLI_TELEMETRY_OPTOUT=1

say "unpacking (commit $(cat .gpu/COMMIT 2>/dev/null))"
python3 - <<'PY' || exit 3
import tarfile, os
def unpack(src, dst):
    os.makedirs(dst, exist_ok=True)
    with tarfile.open(src, "r:xz") as t:
        try:
            t.extractall(dst, filter="fully_trusted")
        except TypeError:
            t.extractall(dst)
unpack(".gpu/apps.tar.xz", ".gpu")
unpack(".gpu/mnist.tar.xz", "/tmp/mnist")
# The .NET runtime, where .gpu/run looks first, once: the programs of phase 3 start side by side and
# would each unpack it into the same folder at once.
import tempfile, shutil
rt = os.path.join(tempfile.gettempdir(), "gpu-dotnet")
version = open(".gpu/dotnet.version").read()
if not (os.path.exists(os.path.join(rt, "dotnet")) and open(os.path.join(rt, ".version")).read() == version if os.path.exists(os.path.join(rt, ".version")) else False):
    shutil.rmtree(rt, ignore_errors=True)
    unpack(".gpu/dotnet.tar.xz", rt)
    open(os.path.join(rt, ".version"), "w").write(version)
PY
export POSTERIORGPU_MNIST=/tmp/mnist
if [ "${SESSION_DRY_CPU:-0}" = 1 ]; then
  # A dry run of the plumbing on a machine without a GPU: the CPU, no side-by-side run, short phase 3.
  export POSTERIORGPU_DEVICE=cpu; gpu=cpu; PHASE2_S=0
else
gpu=cuda
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv || { echo "no nvidia-smi"; exit 3; }
if ! ldconfig -p | grep -q 'libcuda\.so '; then
  so1=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
  [ -n "$so1" ] || { echo "no libcuda.so.1"; exit 3; }
  mkdir -p /tmp/cudalib && ln -sf "$so1" /tmp/cudalib/libcuda.so
  export LD_LIBRARY_PATH="/tmp/cudalib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
bash .gpu/run PosteriorGpu.Cli devices | tee "$OUT/devices.txt"
grep -q "^chosen: cuda" "$OUT/devices.txt" || { echo "session.sh: ILGPU sees no CUDA device; stopping before any timing"; exit 3; }
fi

if [ "$PHASE2_S" -gt 0 ]; then
  say "phase 2: the side-by-side run (limit ${PHASE2_S} s)"
  PEER_ARGS="--repeats 5 --compile-max-batch 1" BENCH_WORK=/tmp/bench timeout "$PHASE2_S" \
    bash bench/gpu/run.sh --models S32,cifar10 --batches 1,64 --ddpm-batch 1 --repeats 5
  say "phase 2 ended ($?)"
fi

mkdir -p /tmp/rest
run_for() { local limit=$1 name=$2; shift 2; say "$name (limit $limit s)"; timeout "$limit" "$@" > "/tmp/rest/$name.log" 2>&1; echo "$name exit $?" >> "/tmp/rest/$name.log"; tail -n 3 "/tmp/rest/$name.log"; }

# 3. The Gpu-category tests, alone (the fixtures travel in shared/ when the call carries it).
[ "$TESTS_S" -gt 0 ] && run_for "$TESTS_S" tests bash .gpu/run PosteriorGpu.Tests --filter "TestCategory=Gpu"

# 4. Where the time goes (POSTERIORGPU_PROFILE=1: each launch synchronised, per-kernel wall time): 50 DDPM steps of
#    the S32 network at batch 1, and 20 training steps of the MNIST model at batch 64.
if [ "$PROFILE_S" -gt 0 ]; then
  POSTERIORGPU_PROFILE=1 run_for "$PROFILE_S" profile-ddpm bash .gpu/run PosteriorGpu.Bench peer-run --out /tmp/profile-ddpm \
    --parts ddpm --ddpm-steps 50 --ddpm-batch 1
  rm -rf /tmp/profile-train && cp -r "$TRAIN_FROM" /tmp/profile-train
  at=$(tail -n 1 /tmp/profile-train/loss.csv | cut -d, -f1)
  POSTERIORGPU_PROFILE=1 run_for "$PROFILE_S" profile-train bash .gpu/run PosteriorGpu.Cli train --device "$gpu" --out /tmp/profile-train \
    --resume --steps $((at + 20)) --batch 64 --lr 5e-4 --warmup 100 --ema-decay 0.999 --checkpoint-every 1000 --log-every 10
fi

# 5. Figure 4 of Xun, Gupta and Price at the paper's budget, one task at a time (a run cut off keeps the tasks it finished).
if [ "$FIGURE4_S" -gt 0 ]; then
  ( export gpu FIGURE4_TASKS FIGURE4_PRIOR_T; timeout "$FIGURE4_S" bash -c 'for task in $FIGURE4_TASKS; do
      bash .gpu/run PosteriorGpu.Cli paper-figure4 --device "$gpu" --digits 64 --tasks $task --dps-steps 24 --levels 1000 \
        --steps-per-level 1 --step-sizes 1e-4,3e-4,1e-3 --prior-timestep $FIGURE4_PRIOR_T --out /tmp/rest/figure4-$task; done' > /tmp/rest/figure4.log 2>&1
    echo "figure4 exit $?" >> /tmp/rest/figure4.log )
  tail -n 6 /tmp/rest/figure4.log
fi

# 6. Training of the shipped MNIST model, resumed from TRAIN_FROM, alone on the GPU; SIGINT at the limit saves the state.
#    TRAIN_UNTIL (seconds from the start of this script) gives it whatever time is left.
if [ -n "${TRAIN_UNTIL:-}" ]; then TRAIN_S=$(( TRAIN_UNTIL - ($(date +%s) - t0) )); fi
if [ "$TRAIN_S" -gt 0 ]; then
  cp -r "$TRAIN_FROM" /tmp/rest/mnist-unet
  say "training (limit $TRAIN_S s)"
  timeout -s INT "$TRAIN_S" bash .gpu/run PosteriorGpu.Cli train --device "$gpu" --out /tmp/rest/mnist-unet --resume \
    --steps 100000 --batch 64 --lr 5e-4 --warmup 100 --ema-decay 0.999 --checkpoint-every 200 --log-every 50 \
    > /tmp/rest/train.log 2>&1; echo "train exit $?" >> /tmp/rest/train.log
  tail -n 3 /tmp/rest/train.log
fi
tar -czf "$OUT/rest.tar.gz" -C /tmp rest
say "done"
