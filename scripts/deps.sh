# scripts/deps.sh - the one list of Debian packages acceld needs to build and test, and the
# function that installs the missing ones. Sourced by quickstart.sh and test.sh (bash).

ACCELD_DEPS=(
	# toolchain
	build-essential autoconf automake libtool pkg-config
	# libraries the daemon and client link
	libevent-dev libprotobuf-c-dev protobuf-c-compiler libgrpc-dev libjansson-dev
	libsystemd-dev libonnx-dev
	# CPU kernel libraries, used when present (kept here so every machine builds the same)
	libopenblas-dev libdnnl-dev
	# tests: cmocka (configure requires it), the example-model check, systemd-analyze
	libcmocka-dev python3-onnx python3-numpy systemd
)

# Install the packages of ACCELD_DEPS that are missing; apt-get update only when needed.
acceld_install_deps() {
	local missing=() p
	for p in "${ACCELD_DEPS[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "deps: all ${#ACCELD_DEPS[@]} Debian packages are installed"
		return 0
	fi
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null 2>&1 ||
			{ echo "deps: missing ${missing[*]}; run as root to install them" >&2; return 1; }
		sudo=(sudo)
	fi
	echo "deps: installing ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
