#!/usr/bin/env bash
# Usage: fault_check.sh MPIRUN DIST_FAULT -- runs tests/dist/dist_fault.cpp on 2 ranks in its three modes.
# exit:  rank 1 exits with status 7 mid-run -> mpirun fails within seconds and names rank 1.
# stall: rank 1 stops answering -> rank 0's collective times out (DISTILL_COMM_TIMEOUT=3), its error names the
#        collective and the waiting rank, and the job ends (MPI_Abort) instead of hanging.
set -uo pipefail
mpirun=$1; prog=$2
fail() { echo "FAIL: $*"; exit 1; }
run() {  # mode -> sets out, rc, secs
  local t0=$(date +%s)
  out=$(DISTILL_COMM_TIMEOUT=3 timeout 120 "$mpirun" -np 2 "$prog" "$1" 2>&1); rc=$?
  secs=$(( $(date +%s) - t0 ))
  echo "--- mode $1: exit status $rc after ${secs}s"; echo "$out" | grep -v '^\s*$' | head -20
}
run ok
[ "$rc" -eq 0 ] || fail "the control run failed"
echo "$out" | grep -q "rank 1 of 2 (mpi): sum 4" || fail "the control run did not sum over 2 ranks"

run exit
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a dead rank must fail the job (status $rc; 124 = hung)"
[ "$secs" -lt 60 ] || fail "the job took ${secs}s to notice the dead rank"
echo "$out" | grep -Eq "rank 1|\[\[[0-9]+,[0-9]+\],1\]" || fail "the error does not name rank 1"

run stall
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "a stalled rank must fail the job (status $rc; 124 = hung)"
[ "$secs" -lt 60 ] || fail "the job took ${secs}s to give up on the stalled rank"
echo "$out" | grep -q "all_reduce of 1024 x 8-byte values on rank 0 of 2 (mpi) got no answer within 3" \
  || fail "rank 0's timeout message is missing"
echo "PASS: dead and stalled ranks end the job with an error"
