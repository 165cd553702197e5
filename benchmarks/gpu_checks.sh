#!/usr/bin/env bash
# The GPU checks of one lease, in one command (docs/performance.md records what they printed).
#
#   bash benchmarks/gpu_checks.sh [OUT_DIR]
#
# Run from the repository root on a CUDA machine where ganforge and its two plugins are
# importable (on a machine without the registry: wheels in .whl/, installed below). Each
# step has its own time limit so that one slow step cannot take the others down; everything
# is also written to OUT_DIR/log.
#   1. benchmarks/train_step.py --device cuda: the plain loop beside ganforge's step with the
#      defaults (bf16), fp32, fp16, compile, compile + CUDA graphs;
#   2. a CIFAR-10-shaped recipe (SNGAN 32, the resnet plugin) on synthetic data, plain, with
#      R1 + ADA (double backward through grid_sample), and compiled with R1 + ADA;
#   3. resume on CUDA: a run of 20 steps against one resumed from its step-10 checkpoint.
set -u
export PYTHONUNBUFFERED=1
out=${1:-${OUT:-/tmp/gpu_checks}}
mkdir -p "$out"
log="$out/log"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi

step() {  # step LIMIT_S TITLE COMMAND...
    local limit=$1 title=$2
    shift 2
    echo "== $title" | tee -a "$log"
    local start=$SECONDS
    timeout "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    echo "   rc=$rc in $((SECONDS - start)) s" | tee -a "$log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee -a "$log"
python3 -c "import torch, ganforge; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
torch.cuda.get_device_name())" 2>&1 | tee -a "$log"
python3 -m ganforge plugins >>"$log" 2>&1

bench="python3 benchmarks/train_step.py --device cuda --steps 50 --warmup 10"
step 60 "bench defaults" $bench
step 60 "bench fp32" $bench --set run.precision=fp32
step 60 "bench fp16" $bench --set run.precision=fp16
step 120 "bench compile" $bench --set run.compile=true
step 120 "bench compile + cuda_graphs" $bench --set run.compile=true --set run.cuda_graphs=true

cifar=(python3 -m ganforge run recipes/sngan_cifar10.toml --set dataset.use=synthetic
       --set dataset.count=8192 --set eval.every=0 --set run.num_workers=8
       --set run.log_every=50 --set run.sample_every=1000 --set run.checkpoint_every=1000)
step 75 "sngan_cifar10 synthetic, 200 steps" "${cifar[@]}" --set run.steps=200 \
    --out /tmp/gc/sngan
step 75 "sngan_cifar10 synthetic + r1 + ada, 200 steps" "${cifar[@]}" --set run.steps=200 \
    --set regularizers.r1.use=r1 --set regularizers.r1.weight=1.0 --set augment.use=ada \
    --out /tmp/gc/sngan_r1_ada
step 120 "sngan_cifar10 synthetic + r1 + ada, compiled, 200 steps" "${cifar[@]}" \
    --set run.steps=200 --set regularizers.r1.use=r1 --set regularizers.r1.weight=1.0 \
    --set augment.use=ada --set run.compile=true --out /tmp/gc/sngan_r1_ada_compiled
grep -h "img/s\|finished\|rror" "$log" | tail -n 12 >"$out/cifar_tail" 2>/dev/null

quick=(python3 -m ganforge run ganforge:quickstart --set run.device=cuda --set run.steps=20
       --set run.checkpoint_every=10 --set run.keep_last=5)
step 40 "resume: uninterrupted 20 steps" "${quick[@]}" --out /tmp/gc/full
mkdir -p /tmp/gc/resumed && cp -r /tmp/gc/full/. /tmp/gc/resumed/ && \
    rm -f /tmp/gc/resumed/checkpoints/step-0000020.safetensors
step 40 "resume: from step 10 to 20" "${quick[@]}" --out /tmp/gc/resumed --resume
python3 - >>"$log" 2>&1 <<'EOF'
from safetensors.torch import load_file
a = load_file("/tmp/gc/full/checkpoints/step-0000020.safetensors")
b = load_file("/tmp/gc/resumed/checkpoints/step-0000020.safetensors")
worst = max(((a[k].double() - b[k].double()).abs().max().item(), k)
            for k in a if a[k].is_floating_point())
same = all(a[k].equal(b[k]) for k in a)
print(f"resume on CUDA: {len(a)} tensors, bit-identical: {same}; largest difference "
      f"{worst[0]:.3g} in {worst[1]}")
EOF
echo "== summary" ; grep -E "^==|rc=|^ +(64|128) |resume on CUDA|img/s  D" "$log" | tail -n 60
