#!/usr/bin/env bash
# mpi_train.sh — `gtr-mpi train` (data-parallel, cross-replica negatives) under
# `mpirun --oversubscribe -n 1|2|3|5` on this machine: the trained model (encoder and Dense
# safetensors) is byte-identical (cmp) to `gtr train`'s with the same --batch/--micro-batch,
# for Adafactor and AdamW, with hard negatives, with one micro-batch or more micro-batches than
# ranks or fewer; the metrics log holds the single process's losses and token counts; ranks
# given another model or options are refused before any work; a rank killed mid-training fails
# the job with a message naming it, leaves no model, and the same command (on another number of
# ranks) resumes from rank 0's checkpoint to the bytes of the uninterrupted run; SIGUSR1 to mpirun stops
# every rank at the same step with a checkpoint, and --resume ends on those bytes too; so does
# SIGTERM with Open MPI's grace period raised.
cd "$(dirname "$0")/../.." || exit 1
. tests/scripts/tap.sh

. tests/scripts/mpi_setup.sh.inc
same_model() { cmp "$1/model.safetensors" "$2/model.safetensors" && cmp "$1/2_Dense/model.safetensors" "$2/2_Dense/model.safetensors"; }
# step, epoch, loss, lr, tokens of each metrics line (not the timings)
numbers() { sed 's/, "seconds".*//' "$1"; }
plan 37

# examples with 0-3 hard negatives each (other documents of the corpus), so micro-batches
# hold different numbers of passages
python3 - "$SF" >"$TMP/negs.jsonl" <<'PY'
import json, sys
d = sys.argv[1]
docs = [json.loads(l) for _, l in zip(range(400), open(d + "/corpus.jsonl"))]
qs = [json.loads(l) for _, l in zip(range(60), open(d + "/queries.jsonl"))]
for i, q in enumerate(qs):
    text = lambda k: (docs[k]["title"] + " " + docs[k]["text"]).strip()
    print(json.dumps({"query": q["text"], "pos": text(i), "neg": [text(100 + 3 * i + j) for j in range(i % 4)]}))
PY

COMMON=(--init "$TINY" --passage-max-len 48 --query-max-len 24 --seed 5 --warmup 1 -t 1 -q)
BEIR=("${COMMON[@]}" -d "$SF" --steps 5 --batch 12 --micro-batch 3)
ok "gtr train (single process, 4 micro-batches)" $GTR train "${BEIR[@]}" -o "$TMP/one"
for n in 1 2 3 5; do
    ok "gtr-mpi train on $n ranks" run $n $MPI train "${BEIR[@]}" -o "$TMP/m$n"
    ok "... the model of gtr train, byte for byte ($n ranks)" same_model "$TMP/one" "$TMP/m$n"
done
is "$(numbers "$TMP/m3.metrics.jsonl")" "$(numbers "$TMP/one.metrics.jsonl")" "metrics: the same losses and tokens on 3 ranks"

NEG=("${COMMON[@]}" -d "$TMP/negs.jsonl" --negatives 2 --steps 4 --batch 10 --micro-batch 4 --optimizer adamw)
ok "gtr train: AdamW, hard negatives, uneven micro-batches" $GTR train "${NEG[@]}" -o "$TMP/neg1"
ok "gtr-mpi train on 2 ranks (AdamW, hard negatives)" run 2 $MPI train "${NEG[@]}" -o "$TMP/neg2"
ok "... the model of gtr train" same_model "$TMP/neg1" "$TMP/neg2"

ONE=("${COMMON[@]}" -d "$SF" --steps 3 --batch 8)
ok "gtr train: one micro-batch per step" $GTR train "${ONE[@]}" -o "$TMP/whole1"
ok "gtr-mpi train on 2 ranks (one micro-batch: rank 1 idle)" run 2 $MPI train "${ONE[@]}" -o "$TMP/whole2"
ok "... the model of gtr train" same_model "$TMP/whole1" "$TMP/whole2"

# ---- disagreement between ranks: refused before any work
fails "a rank with another initial model is refused" timeout 300 mpirun --oversubscribe \
    -n 1 $MPI train "${BEIR[@]}" -o "$TMP/mix" : -n 1 $MPI train "${BEIR[@]}" --init "$WIDE" -o "$TMP/mix"
like "$(cat "$TMP/err")" "rank 1 was given other options or files" "... the message names the rank"
fails "a rank with another learning rate is refused" timeout 300 mpirun --oversubscribe \
    -n 2 $MPI train "${BEIR[@]}" -o "$TMP/mix" : -n 1 $MPI train "${BEIR[@]}" --lr 0.002 -o "$TMP/mix"
like "$(cat "$TMP/err")" "rank 2 was given other options or files" "... the message names the rank"
is "$(ls "$TMP" | grep -c '^mix')" "0" "... and nothing was written (no model, checkpoint or metrics)"

# ---- a rank killed mid-training: non-zero exit naming it, no model, resumable
LONG=("${COMMON[@]}" -d "$SF" --steps 30 --batch 12 --micro-batch 4 --checkpoint-every 3)
ok "gtr train: the uninterrupted run" $GTR train "${LONG[@]}" -o "$TMP/long1"
# rank 0 has logged 7 steps: past the checkpoints of steps 3 and 6
checkpointed() { local n; n=$({ wc -l <"$TMP/long3.metrics.jsonl"; } 2>/dev/null || echo 0); [ "${n:-0}" -ge 7 ]; }
kill_rank1 mid-training checkpointed 3 $MPI train "${LONG[@]}" -o "$TMP/long3"
is "$([ -e "$TMP/long3" ] && echo exists || echo absent)$([ -f "$TMP/long3.ckpt" ] && echo ", checkpoint")" \
   "absent, checkpoint" "... no model, rank 0's checkpoint kept"
ok "the same command on 2 ranks resumes" run 2 $MPI train "${LONG[@]}" -o "$TMP/long3" --resume
ok "... to the model of the uninterrupted single-process run" same_model "$TMP/long1" "$TMP/long3"
is "$(grep -o '"step": [0-9]*' "$TMP/long3.metrics.jsonl" | awk '{print $2}' | tr '\n' ' ')" \
   "$(seq 1 30 | tr '\n' ' ')" "... metrics log: steps 1..30 once each"
ok "... and removed the checkpoint" test ! -e "$TMP/long3.ckpt"

# ---- a signal to mpirun: every rank stops at the same step, rank 0 checkpoints
# Enough steps that the run is still going when the signal has gone through mpirun and its
# daemons to the ranks: 30 tiny steps end in about a second on a quiet machine, before it
# arrives (the test then saw a finished model).
SIG=("${COMMON[@]}" -d "$SF" --steps 300 --batch 12 --micro-batch 4 --checkpoint-every 0)
ok "gtr train: the uninterrupted run of $(echo "${SIG[@]}" | grep -o -- '--steps [0-9]*')" $GTR train "${SIG[@]}" -o "$TMP/sig1"
# signal_mpirun SIGNAL OUT: runs the job on 2 ranks into OUT, sends SIGNAL to mpirun once rank 0
# has logged 3 steps (waiting at most 4 minutes: on a loaded machine mpirun and the ranks start
# slowly, and a signal that comes before the ranks run leaves nothing to resume); two TAP lines
signal_mpirun() {
    local sig=$1 out=$2 pid status
    # (not under `timeout`, which would take SIGUSR1 itself; the loop below is bounded)
    mpirun --oversubscribe -n 2 $MPI train "${SIG[@]}" -o "$out" >/dev/null 2>"$out.err" &
    pid=$!
    for _ in $(seq 4800); do
        n=$({ wc -l <"$out.metrics.jsonl"; } 2>/dev/null || echo 0)
        [ "${n:-0}" -ge 3 ] && break
        kill -0 $pid 2>/dev/null || break
        sleep 0.05
    done
    kill -"$sig" $pid
    wait $pid
    status=$?
    is "$([ $status -ne 0 ] && echo failed)" "failed" "SIG$sig to mpirun: non-zero exit"
    like "$(cat "$out.err")" "continue with --resume" "... rank 0 checkpointed and says how to continue"
}
# SIGUSR1, which mpirun forwards and nothing more: the way gtr train's help gives
signal_mpirun USR1 "$TMP/sig"
ok "resume on 3 ranks" run 3 $MPI train "${SIG[@]}" -o "$TMP/sig" --resume
ok "... the model of the uninterrupted single-process run" same_model "$TMP/sig1" "$TMP/sig"
# SIGTERM: mpirun's daemons send the ranks SIGCONT, SIGTERM odls_base_sigkill_timeout seconds
# later, and SIGKILL as long again after that: 1 s by default, less than a loaded machine may
# need to finish a step and write the checkpoint (CI failed so). With 5 s, and more steps so
# that the run is still going when SIGTERM reaches it:
SIG=("${COMMON[@]}" -d "$SF" --steps 5000 --batch 12 --micro-batch 4 --checkpoint-every 0)
OMPI_MCA_odls_base_sigkill_timeout=5 signal_mpirun TERM "$TMP/sigterm"
ok "... its checkpoint is there" test -s "$TMP/sigterm.ckpt"

done_testing
