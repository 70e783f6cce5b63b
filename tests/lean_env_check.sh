#!/usr/bin/env bash
# The lean install works on its own (make lean-check; CI runs it after make test).
#
#   tests/lean_env_check.sh MAIN_VENV LEAN_VENV WORK_DIR
#
# MAIN_VENV has every extra and writes the sample models; LEAN_VENV has only the base and [onnx,litert].
# With the lean venv: info, routes, inspect of a .tflite, ONNX → int8 ONNX, validate, bench and a pipeline
# (report.html without plots) all exit 0; a command that needs a missing backend exits 5 with one line
# naming the extra; torch and TensorFlow are not installed there. Exits 1 when any check fails.
set -uo pipefail
main=${1:-.venv}
lean=${2:-.venv-lean}
dir=${3:-build/lean-check}
edgekit=$lean/bin/edgekit
failures=0

say() { printf 'lean-check: %s\n' "$*"; }
fail() { say "FAIL $*"; failures=$((failures + 1)); }

# expect CODE CMD...: CMD exits CODE (its output kept in $dir/logs, shown on failure).
n=0
expect() {
    local want=$1 log
    shift
    n=$((n + 1))
    log=$dir/logs/$n.log
    "$@" >"$log.out" 2>"$log.err"
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        say "exit $rc  ${*#"$lean/bin/"}"
    else
        fail "exit $rc (want $want)  $*"
        tail -n 20 "$log.out" "$log.err" | sed 's/^/    /'
    fi
    last_err=$log.err
    last_out=$log.out
}

# expect_missing EXTRA CMD...: CMD exits 5 with one line on stderr naming pip install 'edgekit[EXTRA]'.
expect_missing() {
    local extra=$1
    shift
    expect 5 "$@"
    local lines
    lines=$(grep -c . "$last_err")
    if [ "$lines" -ne 1 ] || ! grep -qF "pip install 'edgekit[$extra]'" "$last_err"; then
        fail "want one line naming pip install 'edgekit[$extra]', got $lines line(s):"
        sed 's/^/    /' "$last_err"
    else
        say "        $(cat "$last_err")"
    fi
}

rm -rf "$dir"
mkdir -p "$dir/logs"

# torch and TensorFlow must not be there (nor anything that drags them in).
if ! "$lean/bin/python" - <<'EOF'
import importlib.util
import sys

present = [m for m in ("torch", "tensorflow", "keras", "executorch", "litert_torch", "jax")
           if importlib.util.find_spec(m) is not None]
if present:
    print(f"lean-check: FAIL the lean venv has {', '.join(present)}")
    sys.exit(1)
print("lean-check: torch, tensorflow, keras, executorch, litert_torch, jax: not installed")
EOF
then
    failures=$((failures + 1))
fi

# Sample models, written with the full venv.
expect 0 "$main/bin/python" -m edgekit.samples "$dir" tflite onnx torch-exported

expect 0 "$edgekit" info
expect 0 "$edgekit" info --json
if ! "$lean/bin/python" - "$last_out" <<'EOF'
import json
import sys

status = {row["extra"]: row["status"] for row in json.load(open(sys.argv[1]))["extras"]}
want = {"onnx": "present", "litert": "present", "torch": "absent", "tensorflow": "absent", "report": "absent"}
wrong = {k: status.get(k) for k, v in want.items() if status.get(k) != v}
if wrong:
    sys.exit(f"lean-check: FAIL info --json extras: want {want}, got {status}")
print("lean-check:         info --json extras: " + ", ".join(f"{k} {v}" for k, v in status.items()))
EOF
then
    failures=$((failures + 1))
fi
expect 0 "$edgekit" routes
expect 0 "$edgekit" inspect "$dir/tiny_cnn.tflite"
expect 0 "$edgekit" inspect "$dir/tiny_cnn.onnx"
expect 0 "$edgekit" convert "$dir/tiny_cnn.onnx" --to onnx --quantize int8 --calibration random \
    -o "$dir/tiny_cnn.int8.onnx"
expect 0 "$edgekit" validate "$dir/tiny_cnn.onnx" "$dir/tiny_cnn.int8.onnx" --data random
expect 0 "$edgekit" bench "$dir/tiny_cnn.tflite" "$dir/tiny_cnn.int8.onnx" --min-seconds 0.1
expect 0 "$edgekit" pipeline "$dir/tiny_cnn.onnx" --to onnx --quantize int8 --data random --no-bench \
    --out "$dir/pipeline"
if grep -qF "edgekit[report]" "$dir/pipeline/report.html" 2>/dev/null; then
    say "        report.html written without plots, naming edgekit[report]"
else
    fail "report.html missing or does not say the plots need edgekit[report]"
fi

# A missing backend: exit 5, one line naming the extra.
expect_missing torch "$edgekit" inspect "$dir/tiny_cnn.pt2"
expect_missing torch-tflite "$edgekit" convert "$dir/tiny_cnn.pt2" --to tflite -o "$dir/from_torch.tflite"
expect_missing digits "$edgekit" validate "$dir/tiny_cnn.onnx" "$dir/tiny_cnn.int8.onnx" --data digits

if [ "$failures" -ne 0 ]; then
    say "$failures check(s) failed (logs: $dir/logs)"
    exit 1
fi
say "passed"
