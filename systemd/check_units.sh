#!/bin/sh
# Check the built systemd files: the unit passes "systemd-analyze verify" with no warning and
# keeps its hardening ("systemd-analyze security --offline"), and the sysusers and tmpfiles
# snippets apply cleanly to a scratch root. Exit 77 (skip) without systemd-analyze.
set -eu
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
command -v systemd-analyze >/dev/null 2>&1 || { echo "SKIP: no systemd-analyze"; exit 77; }

unit=$top_builddir/systemd/acceld.service
sysusers=$top_builddir/systemd/sysusers.d/acceld.conf
tmpfiles=$top_builddir/systemd/tmpfiles.d/acceld.conf
for f in "$unit" "$sysusers" "$tmpfiles"; do
	[ -r "$f" ] || { echo "FAIL: $f was not built"; exit 1; }
	if grep -n '@[a-z_]*@' "$f"; then echo "FAIL: $f has unsubstituted @...@"; exit 1; fi
done
grep -Eq '^ExecStart=/[^ ]*/acceld --config /[^ ]*/acceld/acceld\.conf$' "$unit" ||
	{ echo "FAIL: unexpected ExecStart in $unit"; grep '^ExecStart=' "$unit"; exit 1; }
grep -q '^Type=notify$' "$unit" || { echo "FAIL: $unit is not Type=notify"; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify wants an executable ExecStart: point a copy at the built daemon (not installed yet).
daemon=$(cd "$top_builddir" && pwd)/daemon/acceld
[ -x "$daemon" ] || daemon=/bin/true
sed "s|^ExecStart=[^ ]*|ExecStart=$daemon|" "$unit" > "$tmp/acceld.service"
systemd-analyze verify --man=no "$tmp/acceld.service" > "$tmp/verify.out" 2>&1 || true
if [ -s "$tmp/verify.out" ]; then
	cat "$tmp/verify.out"
	echo "FAIL: systemd-analyze verify complained about acceld.service"
	exit 1
fi
echo "acceld.service: systemd-analyze verify clean (ExecStart=$daemon)"

# Exposure 0 (locked down) .. 10 (unprotected); the unit scores about 3.5 today.
if ! systemd-analyze security --offline=true --threshold=45 "$tmp/acceld.service" > "$tmp/security.out" 2>&1; then
	grep -E 'Overall|✗' "$tmp/security.out" || cat "$tmp/security.out"
	echo "FAIL: acceld.service lost hardening (exposure above 4.5)"
	exit 1
fi
grep 'Overall exposure' "$tmp/security.out" || true

# sysusers creates the user and groups, then tmpfiles lays out /var/lib/acceld, in a scratch
# root (the example models stand in at the path the snippet names).
if command -v systemd-sysusers >/dev/null 2>&1 && command -v systemd-tmpfiles >/dev/null 2>&1; then
	root=$tmp/root
	mkdir -p "$root/etc"
	systemd-sysusers --root="$root" "$sysusers"
	grep -q '^acceld:' "$root/etc/passwd" || { echo "FAIL: sysusers made no acceld user"; exit 1; }
	grep -Eq '^render:.*[:,]acceld(,|$)' "$root/etc/group" ||
		{ echo "FAIL: acceld is not in group render"; cat "$root/etc/group"; exit 1; }
	src=$(sed -n 's|^C /var/lib/acceld/models - - - - ||p' "$tmpfiles")
	[ -n "$src" ] || { echo "FAIL: $tmpfiles does not seed /var/lib/acceld/models"; exit 1; }
	mkdir -p "$root$src"
	cp -R "$top_srcdir/conf/models/." "$root$src/"
	systemd-tmpfiles --root="$root" --create "$tmpfiles"
	[ -f "$root/var/lib/acceld/models/mlp/1/model.onnx" ] ||
		{ echo "FAIL: tmpfiles did not seed the model repository"; exit 1; }
	echo "sysusers and tmpfiles applied cleanly to a scratch root"
fi
