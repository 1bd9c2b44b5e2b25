#!/usr/bin/env bash
# Installs the independent WebRTC stack (aiortc, from PyPI) that tests/interop_aiortc.rs talks
# to, in a venv at /opt/wacall-venv. Idempotent: does nothing when the venv already imports the
# pinned versions. Needs python3 with the venv module (python3-venv, see scripts/setup.sh).
set -euo pipefail

VENV="${WACALL_VENV:-/opt/wacall-venv}"
# Pinned, with every transitive dependency, so CI does not drift under us. All are binary
# wheels for CPython 3.11 manylinux (x86_64 and aarch64).
PKGS=(
    aiortc==1.14.0
    aioice==0.13.0
    av==16.1.0
    cffi==2.1.1
    cryptography==50.0.2
    dnspython==2.9.2
    google-crc32c==1.9.0
    ifaddr==0.2.0
    numpy==2.4.6
    pycparser==3.12
    pyee==13.0.1
    pylibsrtp==1.0.0
    pyOpenSSL==26.4.0
    typing_extensions==4.16.0
)
WANT="aiortc=1.14.0 av=16.1.0 numpy=2.4.6"

have() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$WANT" <<'PY' 2>/dev/null
import sys
import aiortc, av, numpy
got = f"aiortc={aiortc.__version__} av={av.__version__} numpy={numpy.__version__}"
sys.exit(0 if got == sys.argv[1] else 1)
PY
}

if have; then
    echo "interop-setup: $VENV already has $WANT"
    exit 0
fi

PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Wheels only: building av or cryptography from source would need FFmpeg/Rust dev packages.
"$VENV/bin/pip" install --quiet --only-binary=:all: "${PKGS[@]}"

if ! have; then
    echo "interop-setup: $VENV still does not import $WANT" >&2
    exit 1
fi
echo "interop-setup: installed $WANT into $VENV"
