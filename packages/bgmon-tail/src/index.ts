import { followLogs, homeFromEnv, lastString, matchNames, parseCursor, printTail, requestedPatterns, runCommand, tailOutput, UsageError, warn } from 'bgmon-state';
import type { TailOptions } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-tail NAME|GLOB... [-n N] [-f] [--json] [--since CURSOR] [--max-bytes N]

Prints the last N lines (default 10) of each job's log, read from the file's end (as cheap on a
multi-GB log as on a small one). -f follows new output as it is written and exits once every
followed job has ended, after printing everything its log holds. With several jobs each line
is prefixed "name | ". Without names, reads NDJSON records from stdin (when it is not a terminal).

Memory stays flat whatever the lines' lengths. With one job and no --json the log's bytes are
copied as they are (with -f, an unfinished line shows at once); a last line without a newline
gets one. With --json or several jobs, a line longer than 1 MiB is printed as several records
(or "name | " lines) of at most 1 MiB each, cut between UTF-8 characters.

Reading a log in steps: every --json line carries the run's "id" and the byte "offset" just past
that line in its log (past its newline; a line printed without one, an unfinished last line or
a piece of a long line, also has "partial": true). ID:OFFSET is a cursor: --since ID:OFFSET
prints exactly the bytes written after it, none twice, none skipped, also from the middle of a
line. When ID is not the job's current run (it was rerun), or the log is now shorter than
OFFSET (truncated), one line on stderr says so and the whole current log is printed. The log is
read from OFFSET on (seeking, never from its start). A truncated log that regrew past OFFSET
before the call is not noticed, as with tail -f.

--max-bytes N keeps the newest whole lines whose log bytes (before any JSON framing) add up to at
most N, and says on stderr how many bytes were left out (with the cursor where the output
ends, so a call that printed nothing can skip on). With several jobs the budget is shared
evenly. -n and --max-bytes both apply: the newest N lines, then cut to N bytes. With -f they cap
what is printed before following starts.

Options:
  -n N               number of lines (default 10; with --since, every line after the cursor)
  -f, --follow       follow until every job has ended
  --json             print {"name","id","line","offset"} records instead of raw lines
  --since ID:OFFSET  only what was written after this cursor (one job)
  --max-bytes N      print at most N log bytes, the newest whole lines (N, NK, NM or NG)
  -h, --help         this help;  --version  the version

Exit: 0; 2 usage error (a malformed cursor, --since with several jobs); 3 no such job.

Examples:
  bgmon-tail train -n 50
  bgmon-tail -f 'shard_*'
  bgmon-status --status FAILED --json | bgmon-tail -n 5
  c=$(bgmon-status --json api | jq -r '.id + ":0"')        # the start of api's current run
  bgmon-tail --json --since "$c" --max-bytes 4K api > new.ndjson
  c=$(tail -n 1 new.ndjson | jq -r '"\\(.id):\\(.offset)"')   # go on from there next time
`;

const SIZE_RE = /^(0|[1-9][0-9]{0,15})([KMG]?)$/i;

function parseMaxBytes(text: string | undefined): number {
  if (text === undefined) return Infinity;
  const m = SIZE_RE.exec(text);
  const bytes = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf(m[2].toUpperCase() || ' ') : NaN;
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`--max-bytes: expected a number of bytes (N, NK, NM or NG), got ${JSON.stringify(text)}`);
  return bytes;
}

function parseLines(text: string | undefined): number | null {
  if (text === undefined) return null;
  if (!/^\d+$/.test(text) || Number(text) > 1e9) throw new UsageError(`-n: expected a whole number of lines, got ${JSON.stringify(text)}`);
  return Number(text);
}

const spec = { name: 'bgmon-tail', version, usage, strings: ['n', 'since', 'max-bytes'], booleans: ['follow', 'json'], alias: { f: 'follow' } };

runCommand(spec, async (args) => {
  const lines = parseLines(lastString(args.n));
  const sinceText = lastString(args.since);
  const since = sinceText === undefined ? null : parseCursor(sinceText);
  const maxBytes = parseMaxBytes(lastString(args['max-bytes']));
  const json = Boolean(args.json);
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const names = matchNames(home, patterns);
  if (since && names.length > 1) throw new UsageError(`--since: a cursor belongs to one job, got ${names.length}`);
  const opts: TailOptions = {
    lines: since ? lines : lines ?? 10,
    since,
    maxBytes,
    identify: json || since !== null,
    note: (message) => warn('bgmon-tail', message),
  };
  const sink = tailOutput(names.length > 1, json);
  if (args.follow) await followLogs(home, names, opts, sink);
  else printTail(home, names, opts, sink);
});
