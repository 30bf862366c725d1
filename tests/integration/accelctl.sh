#!/bin/sh
# accelctl.sh - accelctl against the real daemon: every command, its output and exit status.
#
# Starts daemon/acceld on a free TCP port and a temporary Unix socket with the repository
# that make_test_models.py writes, runs client/accelctl, stops the daemon with SIGTERM.
# Exit 77 (skip) only when Debian's python3 with python3-onnx is missing.
set -u

srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
ACCELD=$builddir/daemon/acceld
CTL=$builddir/client/accelctl
PY=${PYTHON3:-/usr/bin/python3}

if [ ! -x "$ACCELD" ] || [ ! -x "$CTL" ]; then
	echo "accelctl.sh: $ACCELD or $CTL is not built" >&2
	exit 1
fi
if [ ! -x "$PY" ]; then
	echo "accelctl.sh: SKIP: $PY not found" >&2
	exit 77
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/acceld-ctl-XXXXXX") || exit 1
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	fi
	[ -n "${ACCELD_TEST_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

"$PY" "$srcdir/tests/integration/make_test_models.py" --out "$dir/models" \
	--expected "$dir/expected.json" --examples "$srcdir/conf/models"
rc=$?
[ $rc -eq 77 ] && exit 77
[ $rc -eq 0 ] || { echo "accelctl.sh: make_test_models.py failed ($rc)" >&2; exit 1; }

passed=0
failed=0
out=$dir/out

# ok NAME: count a passed check.
ok() {
	passed=$((passed + 1))
	echo "ok - $1"
}

# bad NAME WHY: count a failed check and show the last command's output.
bad() {
	failed=$((failed + 1))
	echo "FAIL - $1: $2"
	sed 's/^/    | /' "$out"
}

# run NAME WANT_RC ARGS...: run accelctl (stdout and stderr to $out), check its exit status.
run() {
	name=$1
	want=$2
	shift 2
	"$CTL" -t 30000 "$@" >"$out" 2>&1
	got=$?
	if [ "$got" -ne "$want" ]; then
		bad "$name" "exit status $got, expected $want (accelctl $*)"
		return 1
	fi
	return 0
}

# has NAME REGEX: the last output has a line matching the extended regular expression.
has() {
	if grep -Eq -- "$2" "$out"; then ok "$1"; else bad "$1" "no line matches /$2/"; fi
}

# hasnt NAME REGEX: no line of the last output matches.
hasnt() {
	if grep -Eq -- "$2" "$out"; then bad "$1" "a line matches /$2/"; else ok "$1"; fi
}

# Start the daemon; the port is probed free, and retried if taken in between.
start_daemon() {
	for attempt in 1 2 3; do
		port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
		TCP=127.0.0.1:$port
		UDS=unix:$dir/acceld.sock
		"$ACCELD" --listen "$TCP" --listen "$UDS" --model-repository "$dir/models" \
			--log-level info >>"$dir/acceld.log" 2>&1 &
		pid=$!
		i=0
		while [ $i -lt 600 ]; do
			if ! kill -0 "$pid" 2>/dev/null; then
				wait "$pid" 2>/dev/null
				pid=
				break
			fi
			if "$CTL" -a "$TCP" -t 1000 status 2>/dev/null | grep -q '^ready: *true'; then
				return 0
			fi
			sleep 0.1
			i=$((i + 1))
		done
		[ -n "$pid" ] && break # running but never ready: not a port race
	done
	echo "accelctl.sh: acceld did not become ready; its log:" >&2
	tail -n 60 "$dir/acceld.log" >&2
	exit 1
}

start_daemon

# --- status, health, usage ----------------------------------------------------------------
if run "status over TCP" 0 -a "$TCP" status; then
	has "status: live" '^live: +true$'
	has "status: ready" '^ready: +true$'
	has "status: server name" '^server: +acceld '
	has "status: extensions" '^extensions:.* model_repository'
fi
export ACCELD_ADDRESS="$UDS"
if run "status over the Unix socket (ACCELD_ADDRESS)" 0 status; then
	has "status: address from the environment" "^address: +$UDS\$"
fi
unset ACCELD_ADDRESS
run "health" 0 -a "$UDS" health && has "health: SERVING" '^SERVING$'
run "--help" 0 --help && has "--help lists infer" '^  infer MODEL'
run "unknown command" 2 -a "$TCP" frobnicate && has "unknown command message" "unknown command 'frobnicate'"
run "metadata without a model" 2 -a "$TCP" metadata && ok "usage error exits 2"
run "infer with a bad --input" 2 -a "$TCP" infer tiny --input x && ok "bad --input exits 2"
run "unreachable server" 1 -a 127.0.0.1:1 -t 2000 status && has "unreachable: UNAVAILABLE" '^accelctl: UNAVAILABLE: '

# --- models, metadata, config ----------------------------------------------------------------
if run "models" 0 -a "$TCP" models; then
	has "models: header" '^MODEL +VERSION +STATE +REASON'
	has "models: tiny ready" '^tiny +1 +READY'
	has "models: mlp ready" '^mlp +1 +READY'
	has "models: broken unavailable with a reason" '^broken +[^ ]+ +UNAVAILABLE +[^ ]'
fi
if run "metadata tiny" 0 -a "$UDS" metadata tiny; then
	has "metadata: name" '^model: +tiny$'
	has "metadata: input" '^  x +FP32 +\[-1, 4\]$'
	has "metadata: output" '^  y +FP32 +\[-1, 3\]$'
fi
run "metadata of an unknown model" 1 -a "$TCP" metadata no_such_model &&
	has "unknown model: NOT_FOUND message" '^accelctl: NOT_FOUND: .*no_such_model'
if run "config tiny" 0 -a "$TCP" config tiny; then
	if "$PY" -c 'import json, sys; c = json.load(open(sys.argv[1])); sys.exit(not (c["name"] == "tiny" and c["max_batch_size"] == 8 and c["input"][0]["dims"] == [4]))' "$out"; then
		ok "config: JSON with name, max_batch_size and dims"
	else
		bad "config: JSON" "not the configuration of tiny"
	fi
fi

# --- infer ------------------------------------------------------------------------------------
# relu(W x + b) with x = ones: W's rows sum to -2.5, -0.25, 1.75; b = 0.5, -1, 0.25.
if run "infer tiny, generated ones, batch 3, id" 0 -a "$TCP" infer tiny --batch 3 --input x=ones --id abc; then
	has "infer: request id echoed" '^model tiny version 1 id abc$'
	has "infer: output shape" '^y: FP32 \[3, 3\] \(36 bytes\)$'
	has "infer: values" '^  \[0, 0, 2, 0, 0, 2, 0, 0, 2\]$'
	has "infer: argmax of a 2-D FP32 output" '^  argmax: 2 2 2$'
fi
run "infer tiny, zeros" 0 -a "$UDS" infer tiny --input x=zeros && has "infer zeros: relu(b)" '^  \[0.5, 0, 0.25\]$'
if run "infer pair, one requested output" 0 -a "$TCP" infer pair --input a=ones --input b=ones --output prod; then
	has "requested output present" '^prod: FP32 \[1, 4\]'
	hasnt "other output absent" '^sum:'
fi
run "infer ident_int64 random, JSON" 0 -a "$TCP" infer ident_int64 --batch 2 --json &&
	has "JSON result with INT64 data" '"datatype":"INT64","shape":\[2,5\],"data":\[[0-9]'

mlp=$srcdir/conf/models/mlp
if run "infer mlp from the sample file (JSON)" 0 -a "$UDS" infer mlp --input "input=$mlp/sample_input.bin" --json; then
	if "$PY" - "$out" "$mlp/sample_output.bin" <<'EOF'
import json, struct, sys
got = json.load(open(sys.argv[1]))["outputs"][0]
raw = open(sys.argv[2], "rb").read()
want = struct.unpack("<%df" % (len(raw) // 4), raw)
assert got["name"] == "probabilities" and got["shape"] == [1, 10], got
bad = [i for i, (g, w) in enumerate(zip(got["data"], want)) if abs(g - w) > 1e-5 + 1e-4 * abs(w)]
sys.exit(1 if bad or len(got["data"]) != len(want) else 0)
EOF
	then ok "mlp: outputs match the reference"; else bad "mlp: outputs" "differ from sample_output.bin"; fi
fi
run "infer mlp with a file of the wrong size" 2 -a "$TCP" infer mlp --input "input=$mlp/sample_output.bin" --shape input=1,784 &&
	has "wrong-size file message" 'has 40 bytes'
run "infer tiny with a wrong --shape" 1 -a "$TCP" infer tiny --shape x=2,5 &&
	has "wrong shape: INVALID_ARGUMENT naming the input" '^accelctl: INVALID_ARGUMENT: .*x'

# --- load / unload ----------------------------------------------------------------------------
run "unload pair" 0 -a "$TCP" unload pair && has "unload message" '^unloaded pair$'
run "models after unload" 0 -a "$TCP" models && hasnt "pair no longer ready" '^pair +[^ ]+ +READY'
run "infer on an unloaded model" 1 -a "$TCP" infer pair &&
	has "unloaded: error message" '^accelctl: (NOT_FOUND|UNAVAILABLE): '
run "load pair" 0 -a "$UDS" load pair && has "load message" '^loaded pair$'
run "infer after load" 0 -a "$TCP" infer pair && ok "pair serves again"

cat >"$dir/tiny2.json" <<'EOF'
{"name": "tiny", "platform": "onnxruntime_onnx", "max_batch_size": 2,
 "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [4]}],
 "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": [3]}]}
EOF
run "load with a config override" 0 -a "$TCP" load tiny --config "$dir/tiny2.json" && ok "override accepted"
run "config shows the override" 0 -a "$TCP" config tiny && has "max_batch_size 2" '"max_batch_size": 2'
run "batch above the override's limit" 1 -a "$TCP" infer tiny --batch 4 && has "INVALID_ARGUMENT" '^accelctl: INVALID_ARGUMENT: '
echo '{"max_batch_size": ' >"$dir/bad.json"
run "load with a config that is not JSON" 2 -a "$TCP" load tiny --config "$dir/bad.json" && has "bad JSON message" 'not a JSON object'
run "load tiny back from config.json" 0 -a "$TCP" load tiny && ok "reloaded"
run "batch 4 works again" 0 -a "$TCP" infer tiny --batch 4 && has "batch 4 output" '^y: FP32 \[4, 3\]'
run "load an unknown model" 1 -a "$TCP" load no_such_model && has "load unknown: NOT_FOUND" '^accelctl: NOT_FOUND: '

# --- stats ------------------------------------------------------------------------------------
if run "stats tiny" 0 -a "$TCP" stats tiny; then
	has "stats: header" '^tiny \(version 1\)$'
	has "stats: inferences counted" '^  inferences [1-9][0-9]* '
	has "stats: batch sizes" '^  batch [0-9]+: [1-9]'
fi
run "stats of every model" 0 -a "$UDS" stats && has "stats: mlp listed" '^mlp \(version 1\)$'

# --- shutdown ---------------------------------------------------------------------------------
kill -TERM "$pid"
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
if kill -0 "$pid" 2>/dev/null; then
	echo "FAIL - SIGTERM: acceld still runs after 10 s"
	failed=$((failed + 1))
else
	wait "$pid"
	rc=$?
	pid=
	if [ $rc -eq 0 ]; then ok "SIGTERM: clean exit 0"; else
		echo "FAIL - SIGTERM: exit status $rc"
		failed=$((failed + 1))
	fi
fi

if [ $failed -ne 0 ]; then
	echo "---- acceld log (last 60 lines) ----"
	tail -n 60 "$dir/acceld.log"
fi
echo "accelctl: $passed passed, $failed failed"
[ $failed -eq 0 ]
