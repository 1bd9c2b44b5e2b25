#!/usr/bin/env bash
# Short fuzzing regression run: builds every target, then fuzzes each for N seconds (default 20).
# Usage: fuzz/run-short.sh [seconds]   (env: SANITIZER=none|address, default none)
# Exits non-zero as soon as a target crashes (the input is left under fuzz/artifacts/<target>/).
set -euo pipefail

SECS="${1:-20}"
SANITIZER="${SANITIZER:-none}"
HERE="$(cd "$(dirname "$0")" && pwd)"
cd "$HERE"
export CARGO_TARGET_DIR="$HERE/target"
TARGETS=(webhook_parse remote_sdp hub_message rtp_dtmf jitter_buffer settings config)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

nice -n 19 cargo +nightly fuzz build -s "$SANITIZER" --target-dir "$CARGO_TARGET_DIR"

for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "=== $t (${SECS}s)"
    # corpus/<t> collects new inputs (not in git); seeds/<t> is only read.
    if ! nice -n 19 cargo +nightly fuzz run -s "$SANITIZER" --target-dir "$CARGO_TARGET_DIR" \
        "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -jobs=1 -workers=1 -print_final_stats=1 \
        -artifact_prefix="artifacts/$t/"; then
        # With -jobs=1 libFuzzer runs one child process whose output is in fuzz-0.log.
        tail -n 60 fuzz-0.log >&2 || true
        echo "FAIL: $t crashed; see fuzz/artifacts/$t/" >&2
        exit 1
    fi
    mkdir -p logs && mv -f fuzz-0.log "logs/$t.log" 2>/dev/null || true
done
echo "all ${#TARGETS[@]} targets ran ${SECS}s each without a crash"
