#!/usr/bin/env bash
# The main job, end to end: bootstrap, release build, then run the toolkit on the default model.
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$(Tools/scripts/bootstrap.sh)
swift build -c release --product softprompt
bin=$(swift build -c release --show-bin-path)/softprompt
echo "== softprompt inspect $model"
"$bin" inspect "$model"
