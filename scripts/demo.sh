#!/bin/sh
# A real run of the main job: start a detached job, look at it while it runs, see its end recorded.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
PATH="$here/bin:$PATH"
BGMON_HOME=${BGMON_HOME:-$(mktemp -d)/bgmon}
export PATH BGMON_HOME
echo "# demo state lives in BGMON_HOME=$BGMON_HOME"

echo '$ bgmon-start --name fetch -- sh -c "for i in 1 2 3; do echo fetching part \$i; sleep 0.3; done"'
bgmon-start --name fetch -- sh -c 'for i in 1 2 3; do echo fetching part $i; sleep 0.3; done'
echo '$ bgmon-status --table'
bgmon-status --table
sleep 1.2
echo '$ bgmon-status --table   # a second later, the job has ended and its exit is recorded'
bgmon-status --table
echo "\$ cat $BGMON_HOME/logs/fetch.log"
cat "$BGMON_HOME/logs/fetch.log"
