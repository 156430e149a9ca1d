#!/usr/bin/env bash
# The side-by-side GPU run of issues 9 and 19, on the GPU machine, as one command (after tools/gpu-bench here):
#
#   bash bench/gpu/run.sh [--allow-cpu] [peer-run options, e.g. --parts sgemm,unet --batches 1,64]
#
# 1. PosteriorGpu.Bench peer-run (from .gpu/, packed by tools/gpu-bench): times SGEMM 4096^3, writes the
#    random-weight checkpoints (S32, google/ddpm-cifar10-32 architecture) and our epsilon on a check
#    batch, times our workloads, writes ours.json;
# 2. bench/peer/peer_bench.py: PyTorch loads the same safetensors, checks itself against our
#    epsilon, times the same workloads (SGEMM with TF32 off, eager fp32, TF32, torch.compile), writes peer.json;
# 3. bench/peer/ratios.py prints one table of ratios (and writes table.md).
#
# Made for a first contact with a fresh machine that has the NVIDIA driver and PyTorch but no .NET:
# - no libicu needed (DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1);
# - no xz binary needed (the packed .NET runtime is unpacked with Python's lzma when xz is missing);
# - libcuda.so found even when the driver installed only libcuda.so.1 (a symlink in the work folder);
# - fails fast, before any timing, when there is no NVIDIA driver or PyTorch sees no CUDA device, and
#   our side is pinned to CUDA (POSTERIORGPU_DEVICE=cuda): it never times the CPU by accident.
#   --allow-cpu runs the whole pipeline on the CPU on purpose (a dry run of the plumbing);
# - each result file is copied to $OUT (the device tool brings it back) as soon as its step ends,
#   and the log is written there from the start, so a run cut off at the time limit still returns them.
# PEER_ARGS passes options to peer_bench.py (e.g. PEER_ARGS=--no-compile). If the whole run does not
# fit one call's time limit, split it: --parts sgemm,langevin,unet   then   --parts ddpm,posterior
set -euo pipefail
cd "$(dirname "$0")/../.."
die() { echo "bench/gpu/run.sh: error: $*" >&2; exit 3; }
allow_cpu=0
args=()
for a in "$@"; do
  if [ "$a" = --allow-cpu ]; then allow_cpu=1; else args+=("$a"); fi
done
[ -x .gpu/run ] && [ -d .gpu/PosteriorGpu.Bench ] || { echo "bench/gpu/run.sh: no .gpu/PosteriorGpu.Bench; run tools/gpu-bench first (where .NET is)" >&2; exit 2; }
command -v python3 >/dev/null || die "python3 is missing (the PyTorch peer and the runtime unpacking need it)"
work=${BENCH_WORK:-$(mktemp -d -t posteriorgpu-bench.XXXXXX)}
mkdir -p "$work"
export DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1 PYTHONUNBUFFERED=1

if [ "$allow_cpu" = 1 ]; then
  export POSTERIORGPU_ALLOW_CPU=1
  echo "bench/gpu/run.sh: --allow-cpu: timing whatever device there is (a dry run, not a result)" >&2
else
  # The driver's library: ILGPU opens "cuda", i.e. libcuda.so; some driver installs ship only libcuda.so.1.
  so=""; so1=""
  for d in $(ldconfig -p 2>/dev/null | awk '/libcuda\.so/{print $NF}' | xargs -r -n1 dirname | sort -u) \
           /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/local/cuda/compat /usr/lib/wsl/lib; do
    if [ -z "$so" ] && [ -e "$d/libcuda.so" ]; then so="$d/libcuda.so"; fi
    if [ -z "$so1" ] && [ -e "$d/libcuda.so.1" ]; then so1="$d/libcuda.so.1"; fi
  done
  if [ -z "$so" ]; then
    [ -n "$so1" ] || die "no libcuda.so or libcuda.so.1 (no NVIDIA driver here); refusing to time the CPU (--allow-cpu for a dry run)"
    mkdir -p "$work/lib" && ln -sf "$so1" "$work/lib/libcuda.so"
    export LD_LIBRARY_PATH="$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "bench/gpu/run.sh: only $so1 exists; linked it as $work/lib/libcuda.so" >&2
  fi
  python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null \
    || die "PyTorch is missing or sees no CUDA device; refusing to time the CPU (--allow-cpu for a dry run)"
  export POSTERIORGPU_DEVICE=cuda
fi

# The packed .NET runtime is .tar.xz; .gpu/run unpacks it with tar -J, which needs xz. Without xz,
# unpack it here, where .gpu/run looks first (same folder, same version stamp).
rt="$(dirname "$(mktemp -u)")/gpu-dotnet"
if ! command -v xz >/dev/null && { [ ! -x "$rt/dotnet" ] || [ "$(cat "$rt/.version" 2>/dev/null)" != "$(cat .gpu/dotnet.version)" ]; }; then
  echo "bench/gpu/run.sh: no xz; unpacking the .NET runtime with Python's lzma" >&2
  rm -rf "$rt" && mkdir -p "$rt"
  python3 - "$rt" <<'PY'
import sys, tarfile
with tarfile.open(".gpu/dotnet.tar.xz", "r:xz") as t:
    try:
        t.extractall(sys.argv[1], filter="fully_trusted")
    except TypeError:  # Python before 3.12: no filter argument
        t.extractall(sys.argv[1])
PY
  cp .gpu/dotnet.version "$rt/.version"
fi

# The log goes straight to $OUT when set, so that a run cut off at the time limit still brings it back.
log="${OUT:-$work}/run.log"
keep() { if [ -n "${OUT:-}" ] && [ -f "$work/$1" ]; then cp "$work/$1" "$OUT/"; fi; }
start=$(date +%s)
set +e   # a failed step ends the braces, not the copy of what exists below
{
  set -e
  echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(cat .gpu/COMMIT 2>/dev/null || git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv 2>&1 || true
  echo "== PosteriorGpu peer-run"
  bash .gpu/run PosteriorGpu.Bench peer-run --out "$work" ${args[@]+"${args[@]}"}
  keep ours.json
  echo "== PyTorch peer ($(( $(date +%s) - start )) s so far)"
  # shellcheck disable=SC2086
  python3 bench/peer/peer_bench.py "$work" ${PEER_ARGS:-}
  keep peer.json
  echo "== ratios ($(( $(date +%s) - start )) s so far)"
  python3 bench/peer/ratios.py "$work"
  keep table.md
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
for f in ours.json peer.json table.md; do keep "$f"; done
echo "bench/gpu/run.sh: $(( $(date +%s) - start )) s, results in $work${OUT:+ and $OUT}"
exit "$status"
