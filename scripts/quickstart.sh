#!/bin/bash
# Build acceld and run it in the foreground, serving the example models (conf/models) with
# the CPU driver on 127.0.0.1:8001 and unix:/tmp/acceld/acceld.sock. Ctrl-C stops it.
# usage: scripts/quickstart.sh [ACCELD OPTIONS...]   e.g. --log-level debug
# Environment: ACCELD_BUILD_DIR (default ./build), ACCELD_TCP (127.0.0.1:8001),
# ACCELD_SOCKET (/tmp/acceld/acceld.sock).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
source "$top/scripts/deps.sh"
acceld_install_deps

build=${ACCELD_BUILD_DIR:-$top/build}
tcp=${ACCELD_TCP:-127.0.0.1:8001}
sock=${ACCELD_SOCKET:-/tmp/acceld/acceld.sock}

cd "$top"
[ -x configure ] && [ configure -nt configure.ac ] || autoreconf -fi
mkdir -p "$build"
cd "$build"
[ -f Makefile ] || "$top/configure" -q
make -j"$(nproc)"

# A configuration for this run: the same keys as conf/acceld.conf.
mkdir -p "$(dirname "$sock")"
rm -f "$sock"
conf=$build/quickstart.conf
cat > "$conf" <<CONF
{
  "listen": ["$tcp", "unix:$sock"],
  "model_repository": "$top/conf/models",
  "log_level": "info"
}
CONF

cat <<MSG
acceld: serving $top/conf/models on $tcp and unix:$sock (Ctrl-C stops)
  from another terminal:
    $build/client/accelctl -a $tcp models
    $build/client/accelctl -a $tcp infer mlp --input input=random
    $build/client/accelctl -a unix:$sock infer add_sub
MSG
exec "$build/daemon/acceld" --config "$conf" "$@"
