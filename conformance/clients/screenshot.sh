#!/usr/bin/env bash
# Opens the client run's HTML report in a real headless browser (Debian's chromium), checks
# what the browser parsed (one table cell per case and client, as the JSON report counts
# them) and saves a screenshot:
#
#   conformance/clients/screenshot.sh [DIR]    DIR: the run's --out (target/conformance-clients)
#
# Writes DIR/clients.png. Exit 1 when the page does not hold what the JSON report says.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-target/conformance-clients}"
html="$PWD/$dir/clients.html"
json="$dir/clients.json"
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "screenshot.sh: no chromium; install Debian's chromium package" >&2
  exit 2
fi
# Each case is one <td class="cell VERDICT"> per client in the parsed page.
expected=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(sum(len(c["results"]) for c in r["clients"]))' "$json")
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars)
cells=$(timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$html" 2>/dev/null | grep -o '<td class="cell ' | wc -l)
if [ "$cells" -ne "$expected" ]; then
  echo "screenshot.sh: the browser parsed $cells case cells, the JSON report has $expected" >&2
  exit 1
fi
timeout 120 "$browser" "${flags[@]}" --window-size=1400,2400 --screenshot="$PWD/$dir/clients.png" \
  "file://$html" 2>/dev/null
echo "screenshot.sh: $cells case cells in the browser's page; screenshot $dir/clients.png"
