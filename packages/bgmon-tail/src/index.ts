import {
  followLogs,
  homeFromEnv,
  matchTargets,
  printKeptLogs,
  splitTargets,
  parseCursor,
  printTail,
  tailOutput,
  UsageError,
} from 'bgmon-state';
import { commands, lastString, requestedPatterns, runHostedCommand, warn } from 'bgmon-state/cli';
import type { TailOptions } from 'bgmon-state';
import { version } from '../package.json';

const SIZE_RE = /^(0|[1-9][0-9]{0,15})([KMG]?)$/i;

function parseMaxBytes(text: string | undefined): number {
  if (text === undefined) return Infinity;
  const m = SIZE_RE.exec(text);
  const bytes = m ? Number(m[1]) * 1024 ** ' KMG'.indexOf(m[2].toUpperCase() || ' ') : NaN;
  if (!Number.isSafeInteger(bytes))
    throw new UsageError(`--max-bytes: expected a number of bytes (N, NK, NM or NG), got ${JSON.stringify(text)}`);
  return bytes;
}

function parseLines(text: string | undefined): number | null {
  if (text === undefined) return null;
  if (!/^\d+$/.test(text) || Number(text) > 1e9)
    throw new UsageError(`-n: expected a whole number of lines, got ${JSON.stringify(text)}`);
  return Number(text);
}

runHostedCommand(commands.tail, version, async (args) => {
  const lines = parseLines(lastString(args.n));
  const sinceText = lastString(args.since);
  const since = sinceText === undefined ? null : parseCursor(sinceText);
  const maxBytes = parseMaxBytes(lastString(args['max-bytes']));
  const json = Boolean(args.json);
  const home = homeFromEnv();
  const { patterns } = await requestedPatterns(args._, true);
  const { names, past } = splitTargets(home, matchTargets(home, patterns));
  if (since && names.length + past.length > 1)
    throw new UsageError(`--since: a cursor belongs to one job, got ${names.length + past.length}`);
  let failed = false;
  const opts: TailOptions = {
    lines: since ? lines : (lines ?? 10),
    since,
    maxBytes,
    identify: json || since !== null,
    note: (message) => warn('bgmon-tail', message),
    unreadable: (message) => {
      warn('bgmon-tail', message);
      failed = true;
    },
  };
  const sink = tailOutput(names.length + past.length > 1, json);
  // a past run (NAME@ID of a replaced run) has ended: its kept log is printed, never followed
  const used = printKeptLogs(home, past, opts, sink, names.length + past.length);
  opts.maxBytes -= used;
  if (names.length > 0) {
    if (args.follow) await followLogs(home, names, opts, sink);
    else printTail(home, names, opts, sink);
  }
  return failed ? 1 : 0;
});
