#!/usr/bin/env bash
# The whole test suite: bootstrap (packages + default model, so model tests run), then swift test.
# Extra arguments go to `swift test` (e.g. --filter GGUFTests).
set -euo pipefail
cd "$(dirname "$0")/../.."
Tools/scripts/bootstrap.sh >/dev/null
export SOFTPROMPT_MODEL="${SOFTPROMPT_MODEL:-$(Tools/scripts/bootstrap.sh)}"
swift test -c release -Xswiftc -enable-testing "$@"
