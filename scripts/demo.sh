#!/bin/sh
# A real run of the main job: a pipeline of detached stages, followed, chained, reported.
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
echo '# a third stage queued behind build: nothing waits for it, build'"'"'s supervisor starts it'
show bgmon-start --name publish --after build -- sh -c 'echo "publishing"'
show bgmon-status --table
show bgmon-wait publish
show bgmon-tail build publish
show bgmon-status --table
