#!/bin/bash
# Learning check: maze-s, default preset, compiled; bf16-mixed vs 32-true, seeds 0 and 1 (2 runs side by side, 1 thread each).
cd /work/main
D=/work/main/.venv/bin/director
export PYGLET_HEADLESS=1 LP_NUM_THREADS=0
pair() {
  prec=$1
  for s in 0 1; do
    ( /usr/bin/time -v $D train default train.seed=$s train.threads=1 train.compile=true train.precision=$prec \
        train.run_dir=/tmp/learn/$prec-s$s --no-progress > /tmp/learn/$prec-s$s.log 2>&1;
      $D eval /tmp/learn/$prec-s$s --episodes 20 > /tmp/learn/$prec-s$s.eval.json 2>> /tmp/learn/$prec-s$s.log ) &
  done
  wait
}
date > /tmp/learn/start
pair bf16-mixed
date > /tmp/learn/mid
pair 32-true
date > /tmp/learn/end
