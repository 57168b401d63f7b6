#!/usr/bin/env bash
# The whole test suite: bootstrap (packages + default model, so model tests run), a release build of
# everything (the tests spawn the CLI for memory checks), swift test, then the short kill -9 check.
# Extra arguments go to `swift test` (e.g. --filter GGUFTests); with a filter the kill check is skipped.
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/bootstrap.sh >/dev/null
export SOFTPROMPT_MODEL="${SOFTPROMPT_MODEL:-$(Tools/scripts/bootstrap.sh)}"
swift build -c release --build-tests -Xswiftc -enable-testing
# Which instruction-set level the kernels run at on this machine (KernelsTests also print the sets they test).
"$(swift build -c release --show-bin-path)/kernel-bench" --isa
swift test -c release -Xswiftc -enable-testing --skip-build "$@"
if [[ $# -eq 0 ]]; then
    Tools/scripts/kill_check.sh --short
fi
