#!/usr/bin/env bash
# The main job, end to end: bootstrap, release build, then run the toolkit on the default model.
# (The trainer will extend this; today: inspect the model, then generate with it.)
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$(Tools/scripts/bootstrap.sh)
swift build -c release --product softprompt
bin=$(swift build -c release --show-bin-path)/softprompt
echo "== softprompt inspect $model"
"$bin" inspect "$model"
echo
echo "== softprompt generate --chat \"What is the capital of France?\" -n 48"
"$bin" generate -m "$model" --chat "What is the capital of France?" -n 48
