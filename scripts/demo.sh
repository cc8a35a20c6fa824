#!/bin/sh
# A real run of the main job: a two-stage pipeline, detached, followed, chained, reported.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
PATH="$here/bin:$PATH"
BGMON_HOME=${BGMON_HOME:-$(mktemp -d)/bgmon}
export PATH BGMON_HOME
show() { printf '\n$ %s\n' "$*"; "$@"; }
echo "# demo state lives in BGMON_HOME=$BGMON_HOME"

show bgmon-start --name fetch -- sh -c 'for i in 1 2 3 4; do echo "fetching part $i"; sleep 0.4; done'
show bgmon-status --table
show bgmon-tail -f fetch
printf '\n$ bgmon-wait fetch >/dev/null && bgmon-start --name build -- sh -c ...\n'
bgmon-wait fetch >/dev/null && bgmon-start --name build -- sh -c 'echo "building from 4 parts"; sleep 0.5; echo done'
show bgmon-wait build
show bgmon-tail build
show bgmon-status --table
