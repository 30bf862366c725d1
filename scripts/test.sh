#!/bin/bash
# Install the build and test dependencies, build acceld with -Werror and run the test suite,
# then "make distcheck" (the release tarball builds, passes its tests and installs cleanly).
# usage: scripts/test.sh [--no-distcheck] [--sanitizers]
# Environment: ACCELD_BUILD_DIR (default ./build-test), JOBS (default: the CPU count).
# The ONNX conformance cases are taken from ../shared/onnx-conformance/node when present and
# handed to the tests as ACCELD_CONFORMANCE_DIR.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
distcheck=yes
flags=(--enable-werror)
for a in "$@"; do
	case $a in
	--no-distcheck) distcheck=no ;;
	--sanitizers) flags+=(--enable-sanitizers) ;;
	-h | --help) sed -n '2,8p' "$0"; exit 0 ;;
	*) echo "test.sh: unknown option $a" >&2; exit 2 ;;
	esac
done

source "$top/scripts/deps.sh"
acceld_install_deps

if [ -z "${ACCELD_CONFORMANCE_DIR:-}" ] && [ -d "$top/../shared/onnx-conformance/node" ]; then
	ACCELD_CONFORMANCE_DIR=$(cd "$top/../shared/onnx-conformance/node" && pwd)
fi
if [ -n "${ACCELD_CONFORMANCE_DIR:-}" ]; then
	export ACCELD_CONFORMANCE_DIR
	echo "test: ONNX conformance cases from $ACCELD_CONFORMANCE_DIR"
else
	echo "test: no ../shared/onnx-conformance/node; conformance tests will skip"
fi

jobs=${JOBS:-$(nproc)}
build=${ACCELD_BUILD_DIR:-$top/build-test}
start=$SECONDS
phase() { echo "test: [$((SECONDS - start)) s] $1"; }

cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
mkdir -p "$build"
cd "$build"
phase "configure ${flags[*]}"
"$top/configure" -q "${flags[@]}"
phase "build"
make -j"$jobs"

# The summary line of the last run: passed (PASS+XFAIL), failed (FAIL+XPASS+ERROR), skipped.
summary() {
	awk '/^# (PASS|XFAIL):/ {p += $3} /^# (FAIL|XPASS|ERROR):/ {f += $3} /^# SKIP:/ {s += $3}
	     END {printf "check: %d passed, %d failed, %d skipped\n", p, f, s}' "$1"
}

phase "make check"
rm -f test-suite.log
if ! make -j"$jobs" check; then
	[ -f test-suite.log ] && cat test-suite.log
	phase "make check failed"
	[ -f test-suite.log ] && summary test-suite.log
	exit 1
fi
grep '^SKIP' test-suite.log || true

if [ "$distcheck" = yes ]; then
	phase "make distcheck"
	if ! make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS="${flags[*]}" > distcheck.log 2>&1; then
		tail -n 200 distcheck.log
		find . -path './acceld-*/_build/*' -name test-suite.log -exec cat {} + 2>/dev/null || true
		phase "make distcheck failed (full log: $build/distcheck.log)"
		exit 1
	fi
	grep -A3 'archives ready for distribution' distcheck.log || true
fi
phase "done"
summary test-suite.log
