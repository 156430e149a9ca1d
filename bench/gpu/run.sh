#!/usr/bin/env bash
# The side-by-side GPU run of issue 9, on the GPU machine, as one command (after tools/gpu-bench here):
#
#   bash bench/gpu/run.sh [peer-run options, e.g. --parts langevin,unet --batches 1,64]
#
# 1. PosteriorGpu.Bench peer-run (from .gpu/, packed by tools/gpu-bench): writes the random-weight
#    checkpoints (S32, google/ddpm-cifar10-32 architecture) and our epsilon on a check batch, times
#    our workloads, writes ours.json;
# 2. bench/peer/peer_bench.py: PyTorch loads the same safetensors, checks itself against our
#    epsilon, times the same workloads (eager fp32, TF32, torch.compile), writes peer.json;
# 3. bench/peer/ratios.py prints one table of ratios (and writes table.md).
# ours.json, peer.json, table.md and the log go to $OUT when it is set (the device tool brings
# them back), else stay in the work folder. PEER_ARGS passes options to peer_bench.py
# (e.g. PEER_ARGS=--no-compile). If the whole run does not fit one call's time limit, split it:
#   bash bench/gpu/run.sh --parts langevin,unet      then      bash bench/gpu/run.sh --parts ddpm,posterior
set -euo pipefail
cd "$(dirname "$0")/../.."
[ -x .gpu/run ] && [ -d .gpu/PosteriorGpu.Bench ] || { echo "bench/gpu/run.sh: no .gpu/PosteriorGpu.Bench; run tools/gpu-bench first (where .NET is)" >&2; exit 2; }
work=${BENCH_WORK:-$(mktemp -d -t posteriorgpu-bench.XXXXXX)}
mkdir -p "$work"
# The log goes straight to $OUT when set, so that a run cut off at the time limit still brings it back.
log="${OUT:-$work}/run.log"
export PYTHONUNBUFFERED=1
start=$(date +%s)
set +e   # a failed step ends the braces, not the copy of what exists below
{
  set -e
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(cat .gpu/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv 2>&1 || true
  echo "== PosteriorGpu peer-run"
  bash .gpu/run PosteriorGpu.Bench peer-run --out "$work" "$@"
  echo "== PyTorch peer ($(( $(date +%s) - start )) s so far)"
  # shellcheck disable=SC2086
  python3 bench/peer/peer_bench.py "$work" ${PEER_ARGS:-}
  echo "== ratios ($(( $(date +%s) - start )) s so far)"
  python3 bench/peer/ratios.py "$work"
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ -n "${OUT:-}" ]; then
  for f in ours.json peer.json table.md; do
    if [ -f "$work/$f" ]; then cp "$work/$f" "$OUT/"; fi
  done
fi
echo "bench/gpu/run.sh: $(( $(date +%s) - start )) s, results in $work${OUT:+ and $OUT}"
exit "$status"
