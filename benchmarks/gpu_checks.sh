#!/usr/bin/env bash
# The GPU checks of one lease, in one command (docs/performance.md records what they printed).
#
#   bash benchmarks/gpu_checks.sh [--dry-run] [OUT_DIR]        (or GPU_CHECKS_DRY=1)
#
# Run from the repository root on a CUDA machine where ganforge and its two plugins are
# importable (on a machine without the registry: wheels in .whl/, installed below). Each
# step has its own time limit so that one slow step cannot take the others down; everything
# is also written to OUT_DIR/log. It prints every figure of docs/performance.md's CUDA tables:
#   1. benchmarks/train_step.py --device cuda: the plain loop beside ganforge's step with the
#      defaults (bf16), fp32, fp16, compile, compile + CUDA graphs, and the whole step as one
#      graph (run.graph=step): img/s, ratio, peak memory, FLOPs, launches per step;
#   2. a CIFAR-10-shaped recipe (SNGAN 32, the resnet plugin) on synthetic data, plain, with
#      R1 + ADA (double backward through grid_sample), and compiled with R1 + ADA;
#   3. resume on CUDA: a run of 20 steps against one resumed from its step-10 checkpoint,
#      eager and with run.graph=step.
# --dry-run checks the plumbing on the CPU: tiny sizes, TORCHDYNAMO_DISABLE=1 (compiled
# functions run eagerly; the graph itself is tests/test_step_graph.py's business), and the
# CUDA-only and CIFAR steps listed with their headers but skipped.
set -u
export PYTHONUNBUFFERED=1
dry=${GPU_CHECKS_DRY:-0}
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
out=${1:-${OUT:-/tmp/gpu_checks}}
mkdir -p "$out"
log="$out/log"
: >"$log"
work="$out/runs"
rm -rf "$work" && mkdir -p "$work"
if [ "$dry" != 1 ] && ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi

step() {  # step LIMIT_S|skip TITLE COMMAND...
    local limit=$1 title=$2
    shift 2
    echo "== $title" | tee -a "$log"
    if [ "$limit" = skip ]; then
        echo "   skipped in the dry run" | tee -a "$log"
        return
    fi
    local start=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - start)) s" | tee -a "$log"
}

if [ "$dry" = 1 ]; then
    py=${PYTHON:-python3}
    export TORCHDYNAMO_DISABLE=1
    device=cpu
    bench=("$py" benchmarks/train_step.py --device cpu --batch 8 --steps 1 --warmup 1
           --set dataset.image_size=32 --set generator.width=4 --set discriminator.width=4
           --set generator.latent_dim=8)
    cuda_only=skip
    heavy=skip
    echo "dry run on the CPU (tiny sizes, TORCHDYNAMO_DISABLE=1)" | tee -a "$log"
else
    py=python3
    device=cuda
    bench=("$py" benchmarks/train_step.py --device cuda --steps 50 --warmup 10)
    cuda_only=120
    heavy=75
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
fi
"$py" -c "import torch, ganforge; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')" 2>&1 | tee -a "$log"
[ "$dry" = 1 ] || "$py" -m ganforge plugins >>"$log" 2>&1

# Table 1 (CUDA switches): every line prints img/s, ratio, peak memory and launches/step.
step 60 "bench defaults" "${bench[@]}"
step "$cuda_only" "bench fp32" "${bench[@]}" --set run.precision=fp32
step "$cuda_only" "bench fp16" "${bench[@]}" --set run.precision=fp16
step "$cuda_only" "bench compile" "${bench[@]}" --set run.compile=true
step "$cuda_only" "bench compile + cuda_graphs" "${bench[@]}" --set run.compile=true \
    --set run.cuda_graphs=true
# The whole step as one graph (on CUDA: one CUDA graph); channels_last off as with compile.
step 300 "bench graph step" "${bench[@]}" --set run.graph=step --set run.channels_last=false

# Table 2 (CIFAR-10-shaped run).
cifar=("$py" -m ganforge run recipes/sngan_cifar10.toml --set dataset.use=synthetic
       --set dataset.count=8192 --set eval.every=0 --set run.num_workers=8
       --set run.log_every=50 --set run.sample_every=1000 --set run.checkpoint_every=1000)
step "$heavy" "sngan_cifar10 synthetic, 200 steps" "${cifar[@]}" --set run.steps=200 \
    --out "$work/sngan"
step "$heavy" "sngan_cifar10 synthetic + r1 + ada, 200 steps" "${cifar[@]}" \
    --set run.steps=200 --set regularizers.r1.use=r1 --set regularizers.r1.weight=1.0 \
    --set augment.use=ada --out "$work/sngan_r1_ada"
step "$cuda_only" "sngan_cifar10 synthetic + r1 + ada, compiled, 200 steps" "${cifar[@]}" \
    --set run.steps=200 --set regularizers.r1.use=r1 --set regularizers.r1.weight=1.0 \
    --set augment.use=ada --set run.compile=true --out "$work/sngan_r1_ada_compiled"

# Table 3 (resume on the device), eager and as one graph (the dry run checks the plumbing
# once, with the graph: the eager resume is tested throughout the suite).
modes="off step"
[ "$dry" = 1 ] && modes="step"
for mode in $modes; do
    quick=("$py" -m ganforge run ganforge:quickstart --set run.device=$device
           --set run.steps=20 --set run.checkpoint_every=10 --set run.keep_last=5
           --set run.graph=$mode --set run.sample_every=1000)
    if [ "$dry" = 1 ]; then
        quick+=(--set run.batch_size=8 --set generator.width=4 --set discriminator.width=4)
    fi
    if [ $mode = step ]; then quick+=(--set run.channels_last=false); fi
    a="$work/resume_$mode/full" b="$work/resume_$mode/resumed"
    step 300 "resume (run.graph=$mode): uninterrupted 20 steps" "${quick[@]}" --out "$a"
    mkdir -p "$b" && cp -r "$a/." "$b/" && rm -f "$b/checkpoints/step-0000020.safetensors"
    step 300 "resume (run.graph=$mode): from step 10 to 20" "${quick[@]}" --out "$b" --resume
    "$py" - "$a" "$b" "$mode" >>"$log" 2>&1 <<'EOF'
import sys
from safetensors.torch import load_file
a = load_file(f"{sys.argv[1]}/checkpoints/step-0000020.safetensors")
b = load_file(f"{sys.argv[2]}/checkpoints/step-0000020.safetensors")
worst = max(((a[k].double() - b[k].double()).abs().max().item(), k)
            for k in a if a[k].is_floating_point())
same = all(a[k].equal(b[k]) for k in a)
print(f"resume (run.graph={sys.argv[3]}): {len(a)} tensors, bit-identical: {same}; "
      f"largest difference {worst[0]:.3g} in {worst[1]}")
EOF
done
echo "== summary"
grep -E "^==|rc=|skipped|^ +(8|64|128) |ganforge: |^resume \(|img/s  D" "$log" | tail -n 80
