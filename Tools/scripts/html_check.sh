#!/usr/bin/env bash
# Renders an HTML report (softprompt explain --html) in headless Chromium (Debian's `chromium` package)
# with every host name unresolvable, and fails on any console message, uncaught error or failed load,
# or when the page did not render (no screenshot, or no SVG in the rendered DOM).
#   usage: Tools/scripts/html_check.sh PAGE.html [SCREENSHOT.png]
set -euo pipefail
page=${1:?usage: html_check.sh PAGE.html [SCREENSHOT.png]}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shot=${2:-$work/page.png}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
    echo "html_check: chromium is not installed (apt-get install chromium)" >&2
    exit 2
fi
url="file://$(realpath "$page")"
flags=(--headless --disable-gpu --no-sandbox --no-first-run --user-data-dir="$work/profile"
       --host-resolver-rules="MAP * ~NOTFOUND" --enable-logging=stderr --v=0 --window-size=1200,1600)
timeout 120 "$browser" "${flags[@]}" --screenshot="$shot" "$url" >/dev/null 2>"$work/shot.log" || true
timeout 120 "$browser" "${flags[@]}" --dump-dom "$url" >"$work/dom.html" 2>"$work/dom.log" || true
status=0
# Console output of the page (console.*, uncaught exceptions, resources that failed to load).
if grep -hE "CONSOLE|Uncaught|net::ERR|Failed to load resource" "$work/shot.log" "$work/dom.log"; then
    echo "html_check: console messages above" >&2
    status=1
fi
if [ ! -s "$shot" ]; then echo "html_check: no screenshot written" >&2; status=1; fi
if ! grep -q "</svg>" "$work/dom.html"; then echo "html_check: the rendered DOM has no SVG" >&2; status=1; fi
if [ "$status" = 0 ]; then
    echo "html_check: $page rendered ($(wc -c <"$shot") byte screenshot at $shot, $(grep -o "<svg" "$work/dom.html" | wc -l) SVG charts), no console messages"
fi
exit "$status"
