#!/usr/bin/env bash
# Reference linkers on NCBI-disease test vs MEDIC (issue: foundation). Writes benchmarks/out/ref_*.json.
set -euo pipefail
cd "$(dirname "$0")/.."
D=../shared/data
OUT=benchmarks/out; mkdir -p $OUT
G=.venv/bin/genbel
TEST=$D/ncbi-disease/NCBItestset_corpus.txt
KB=$D/medic/medic_06Jul2012.txt
TRAIN=$D/ncbi-disease/NCBItrainset_corpus.txt
DEV=$D/ncbi-disease/NCBIdevelopset_corpus.txt
for linker in exact tfidf; do
  for abbr in no-abbreviations abbreviations; do
    $G evaluate $TEST --kb $KB --linker $linker --$abbr --train-corpus $TRAIN --json-out $OUT/ref_${linker}_${abbr}.json
    $G evaluate $TEST --kb $KB --linker $linker --$abbr --train-corpus $TRAIN --augment-kb $TRAIN --augment-kb $DEV \
      --json-out $OUT/ref_${linker}_${abbr}_aug.json
  done
done
.venv/bin/python benchmarks/eval_table.py $OUT/ref_*.json
