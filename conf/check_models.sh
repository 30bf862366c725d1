#!/bin/sh
# Regenerate the example models with conf/make_models.py and compare them byte for byte with
# the committed conf/models; then run each committed model.onnx through the tool's numpy
# interpreter and compare with its sample files. Exit 77 (skip) without python3-onnx.
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
py=${PYTHON3:-/usr/bin/python3}
if ! "$py" -c 'import onnx, numpy' 2>/dev/null; then
	echo "SKIP: $py cannot import onnx and numpy (apt-get install python3-onnx python3-numpy)"
	exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" "$top_srcdir/conf/make_models.py" --out "$tmp/models"
if ! diff -r "$top_srcdir/conf/models" "$tmp/models"; then
	echo "FAIL: conf/models differs from what conf/make_models.py writes; regenerate with"
	echo "      /usr/bin/python3 conf/make_models.py --out conf/models"
	exit 1
fi
echo "conf/models matches conf/make_models.py byte for byte"
"$py" "$top_srcdir/conf/make_models.py" --verify "$top_srcdir/conf/models"
