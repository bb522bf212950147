#!/bin/bash
# The demo's own steps (ingest → score → reference → train → evaluate, configs/tiny.yaml), once per seed,
# on a built tiny world, with extra config overrides; prints the headline of each evaluation.
#
#   benchmarks/tiny_demo_seeds.sh WORLD OUT NAME "KEY=VALUE ..." SEED...
#   benchmarks/tiny_demo_seeds.sh WORLD OUT sft - SEED...        # the SFT policy itself, evaluated
#
# OUT/prep holds the scored dataset (made once) and its reference columns, one folder per way of summing
# rejected answers (prep/ref-all, prep/ref-through_fork: what the run's train.loss.rejected_tokens
# resolves to); OUT/NAME-s<seed>/{train,eval} each run. The table of
# benchmarks/tiny_effect.md ("The demo as it runs") is benchmarks/tiny_demo_table.py over OUT.
# With VALIDATION=1 each model is also evaluated on the held-out validation pairs (OUT/prep/valbench,
# benchmarks/tiny_validation_bench.py) into OUT/NAME-s<seed>/val: what settings are chosen on.
set -euo pipefail
W=$1; O=$2; NAME=$3; SETS=$4; shift 4
export DS_ACCELERATOR=${DS_ACCELERATOR:-cpu} HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
damo() { python -m damo "$@"; }
S=(--config tiny --set "score.clip_model=$W/clip" --set "pipeline.tiny_world_dir=$W")
mkdir -p "$O"
[ -f "$O/prep/ingest/manifest.json" ] || damo ingest "${S[@]}" --source "$W/data" --out "$O/prep/ingest"
[ -f "$O/prep/scored/manifest.json" ] || damo score "${S[@]}" --data "$O/prep/ingest" --out "$O/prep/scored"
for seed in "$@"; do
  R="$O/$NAME-s$seed"; args=(--set "seed=$seed")
  [ "$SETS" = "-" ] || for kv in $SETS; do args+=(--set "$kv"); done
  model="$W/policy"
  if [ "$NAME" != sft ]; then
    tokens=$(python - "${args[@]}" <<'PY'
import sys
from damo.config import load_config
sets = [a for a in sys.argv[1:] if a != "--set"]
print(load_config("tiny", sets).train.loss.rejected_tokens)
PY
)
    ref="$O/prep/ref-$tokens"
    [ -f "$ref/manifest.json" ] || damo reference "${S[@]}" --set "train.loss.rejected_tokens=$tokens" \
        --data "$O/prep/scored" --model "$W/policy" --out "$ref"
    [ -f "$R/train/result.json" ] || damo train "${S[@]}" "${args[@]}" --data "$ref" --model "$W/policy" \
        --out "$R/train" > "$R.train.log" 2>&1
    model="$R/train/model"
  fi
  [ -f "$R/eval/metrics.json" ] || damo evaluate "${S[@]}" "${args[@]}" --model "$model" --out "$R/eval" > "$R.eval.log" 2>&1
  if [ "${VALIDATION:-0}" = 1 ]; then
    [ -f "$O/prep/valbench/tiny_world.jsonl" ] || python benchmarks/tiny_validation_bench.py "$O/prep/ingest" "$W" \
        "$O/prep/valbench"
    [ -f "$R/val/metrics.json" ] || damo evaluate "${S[@]}" "${args[@]}" --set "evaluate.data.tiny_world=$O/prep/valbench" \
        --model "$model" --out "$R/val" > "$R.val.log" 2>&1
  fi
  python -c "import json,sys; m=json.load(open(sys.argv[1])); s,g=m['tiny_world'],m['tiny_world_greedy']; \
print(sys.argv[2], 'extra_s=%.4f well_formed_s=%.4f exact_g=%.4f' % (s['extra_object_rate'], s['well_formed'], g['exact']))" \
    "$R/eval/metrics.json" "$R"
done
