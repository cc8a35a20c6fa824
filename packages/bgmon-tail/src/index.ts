import { requestedHosts, runOnHosts, followLogs, homeFromEnv, lastString, matchNames, printLastLines, requestedPatterns, runCommand, tailOutput, UsageError } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-tail NAME|GLOB... [-n N] [-f] [--json] [--host H1,H2]

Prints the last N lines (default 10) of each job's log, read from the file's end (as cheap on a
multi-GB log as on a small one). -f follows new output as it is written and exits once every
followed job has ended, after printing everything its log holds. With several jobs each line
is prefixed "name | ". Without names, reads NDJSON records from stdin (when it is not a terminal).

Memory stays flat whatever the lines' lengths. With one job and no --json the log's bytes are
copied as they are (with -f, an unfinished line shows at once); a last line without a newline
gets one. With --json or several jobs, a line longer than 1 MiB is printed as several records
(or "name | " lines) of at most 1 MiB each, cut between UTF-8 characters.

Options:
  -n N          number of lines (default 10)
  -f, --follow  follow until every job has ended
  --json        print {"name","line"} records instead of raw lines
  --host H1,H2  tail on each host over ssh ($BGMON_SSH, default ssh); lines prefixed "H:name | "
                (--json: records tagged with "host"); default $BGMON_HOSTS; empty: this machine
  -h, --help    this help;  --version  the version

Exit: 0; 2 usage error; 3 no such job. With --host: 1 when a host could not answer (one line on
stderr: "host H: reason"); 2 or 3 when every host said so.

Examples:
  bgmon-tail train -n 50
  bgmon-tail -f 'shard_*'
  bgmon-tail -f --host gpu1,gpu2 train
  bgmon-status --status FAILED --json | bgmon-tail -n 5
`;

runCommand({ name: 'bgmon-tail', version, usage, strings: ['n', 'host'], booleans: ['follow', 'json'], alias: { f: 'follow' } }, async (args) => {
  const hosts = requestedHosts(args);
  if (hosts) return runOnHosts('bgmon-tail', hosts, args);
  const nText = lastString(args.n) ?? '10';
  if (!/^\d+$/.test(nText) || Number(nText) > 1e9) throw new UsageError(`-n: expected a whole number of lines, got ${JSON.stringify(nText)}`);
  const n = Number(nText);
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const names = matchNames(home, patterns);
  const sink = tailOutput(names.length > 1, Boolean(args.json));
  if (args.follow) {
    await followLogs(home, names, n, sink);
    return;
  }
  for (const name of names) printLastLines(home, name, n, sink);
});
