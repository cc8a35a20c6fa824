#!/bin/sh
# A real run of the main job: a pipeline of detached stages, followed, chained, reported.
# Nothing here depends on timing: fetch waits on a fifo until the demo releases it, so every
# status printed before that shows fetch RUNNING and build QUEUED, whatever the machine's speed.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
PATH="$here/bin:$PATH"
BGMON_HOME=${BGMON_HOME:-$tmp/bgmon}
export PATH BGMON_HOME
gate=$tmp/gate
mkfifo "$gate"
# If the demo is interrupted before it releases fetch, stop it rather than leave it waiting.
trap 'bgmon-stop fetch >/dev/null 2>&1 || true; rm -f "$gate"; rmdir "$tmp" 2>/dev/null || true' EXIT
show() { printf '\n$ %s\n' "$*"; "$@"; }
echo "# demo state lives in BGMON_HOME=$BGMON_HOME"

echo '# fetch runs detached, and waits until the demo opens the gate (a fifo)'
# shellcheck disable=SC2016 # the job's own script, expanded by its sh
show bgmon-start --name fetch -- sh -c 'echo "fetching 4 parts"; read -r _ < "$0"; for i in 1 2 3 4; do echo "fetched part $i"; done' "$gate"
echo '# build is queued behind fetch: no process waits for it; fetch'"'"'s supervisor will start it'
show bgmon-start --name build --after fetch -- sh -c 'echo "building from 4 parts"; echo done'
show bgmon-status --table
printf '\n$ echo go > %s    # open the gate: fetch finishes\n' "$gate"
echo go >"$gate"
show bgmon-tail -f fetch
printf '\n$ bgmon-wait build >/dev/null && bgmon-start --name publish -- sh -c ...\n'
bgmon-wait build >/dev/null && bgmon-start --name publish -- sh -c 'echo "publishing"'
show bgmon-wait publish
show bgmon-tail build publish
show bgmon-status --table
