// Several hosts: the same command on each host over ssh ($BGMON_SSH), in parallel, with the
// answers merged into one stream of whole lines, each record tagged with its `host`.
import type { ChildProcess } from 'node:child_process';
import { allStrings, out, runCommand, warn, type Args } from './cli';
import type { CommandDoc } from './commands/types';
import { commandSpec } from './usage';
import { UsageError } from './errors';
import { isGlob, isValidName, nameMatcher } from './names';
import { oneLine, outputMode, shellQuote, table } from './output';
import type { JobRecord } from './record';
import { waitExitCode } from './wait';
import { isTty } from './fsutil';

export type HostCommand = 'bgmon-status' | 'bgmon-wait' | 'bgmon-tail' | 'bgmon-stop';

// What ssh accepts as a destination, never starting with '-' (it would be read as an option).
const HOST_NAME = /^[A-Za-z0-9_.@:%][A-Za-z0-9_.@:%-]{0,254}$/;
// A remote line longer than this is not one of ours (tail cuts lines at 1 MiB; JSON escaping
// can grow one up to 6x).
const MAX_LINE = 8 * 1024 * 1024;
// ssh exits 255 when it cannot reach the host (or loses it); a shell exits 127 for a missing command.
const SSH_FAILED = 255;
const NOT_FOUND = 127;

/**
 * The hosts a command runs on: every --host (comma-separated, given more than once they add up),
 * else BGMON_HOSTS. Null (run locally) when neither is given or the list is empty, so
 * `--host ''` runs locally whatever BGMON_HOSTS says.
 */
export function requestedHosts(args: Args, env: NodeJS.ProcessEnv = process.env): string[] | null {
  const fromFlag = args.host !== undefined;
  const given = fromFlag ? allStrings(args.host) : [env.BGMON_HOSTS ?? ''];
  const hosts = [
    ...new Set(
      given
        .flatMap((s) => s.split(','))
        .map((s) => s.trim())
        .filter(Boolean),
    ),
  ];
  for (const h of hosts) {
    const source = fromFlag ? '--host' : 'BGMON_HOSTS';
    if (!HOST_NAME.test(h)) throw new UsageError(`${source}: not a host name: ${JSON.stringify(h)}`);
  }
  return hosts.length > 0 ? hosts : null;
}

/** The command line's words without --host (the remote must run locally). */
export function withoutHostFlag(argv: string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      kept.push(...argv.slice(i));
      break;
    }
    if (arg === '--host') i++;
    else if (!arg.startsWith('--host=')) kept.push(arg);
  }
  return kept;
}

interface HostRun {
  host: string;
  /** the remote command's exit code; null when it did not run to its end */
  code: number | null;
  /** one-line reason when the host could not answer (unreachable, no bgmon, bad output) */
  failure: string | null;
  /** stdout lines (records) received */
  lines: number;
  /** lines it wrote on stderr, relayed with the host's name */
  relayed: number;
  /** ended by us because its answer is no longer needed (wait --any) */
  cancelled: boolean;
  child: ChildProcess | null;
}

interface HostIo {
  /** the command's arguments */
  argv: string[];
  /** NDJSON for the remote's stdin, or null for /dev/null */
  input: string | null;
  /** stdout goes straight to ours (one host, one job, raw tail) */
  raw: boolean;
  /** one whole stdout line; returns false when it is not what the command prints */
  onLine: (run: HostRun, line: string) => boolean;
  /** called once the host's command has ended, before the others may have */
  onEnd: (run: HostRun) => void;
}

function transport(env: NodeJS.ProcessEnv): string[] {
  const words = (env.BGMON_SSH ?? '').split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : ['ssh'];
}

/** Runs the command on one host; resolves when it has ended, whatever happened. */
interface Started {
  run: HostRun;
  done: Promise<HostRun>;
  cancel: () => void;
}

/** What the transport's exit says when the remote printed nothing: unreachable, no bgmon, killed. */
function failOnExit(run: HostRun, ssh: string, command: string, held: string[]): void {
  if (run.code === SSH_FAILED && run.lines === 0) fail(run, held.pop() ?? `unreachable (${ssh} exited ${run.code})`);
  else if (run.code === NOT_FOUND && run.lines === 0) fail(run, `${command} not found on the remote PATH`);
  else if (run.code === null) fail(run, `${ssh} was killed`);
}

function runOnHost(command: HostCommand, host: string, io: HostIo): Started {
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const [ssh, ...sshArgs] = transport(process.env);
  // env BGMON_HOSTS= : a remote whose environment names hosts must not fan out again.
  const remote = ['env', 'BGMON_HOSTS=', command, ...io.argv].map(shellQuote);
  const run: HostRun = { host, code: null, failure: null, lines: 0, relayed: 0, cancelled: false, child: null };
  const held: string[] = [];
  const relay = (line: string) => {
    run.relayed++;
    // a host's words reach a terminal: no escape sequence of its own, no line break
    const said = line.startsWith(`${command}: `) ? line.slice(command.length + 2) : line;
    warn(command, `host ${host}: ${oneLine(said)}`);
  };
  const stdio = [io.input === null ? 'ignore' : 'pipe', io.raw ? 'inherit' : 'pipe', 'pipe'] as const;
  const child = spawn(ssh, [...sshArgs, host, '--', ...remote], { stdio: [...stdio] });
  run.child = child;
  if (io.input !== null) {
    child.stdin!.on('error', () => {}); // a remote that exits without reading stdin
    child.stdin!.end(io.input);
  }
  const connected = () => {
    if (run.lines === 0) held.splice(0).forEach(relay);
    run.lines++;
  };
  if (!io.raw) {
    eachLine(
      child.stdout!,
      (line) => {
        if (run.failure) return;
        connected();
        if (!io.onLine(run, line)) fail(run, `printed something that is not ${command} output: ${line.slice(0, 80)}`);
      },
      () => fail(run, `printed a line longer than ${MAX_LINE} bytes`),
    );
  }
  // Until the remote says something on stdout, its stderr may be ssh's own: held, so that an
  // unreachable host makes one line, not ssh's several.
  const onStderr = (line: string) => (line.trim() === '' ? undefined : run.lines > 0 ? relay(line) : held.push(line));
  eachLine(child.stderr!, onStderr, () => {});
  let cancel = () => {};
  const done = new Promise<HostRun>((resolve) => {
    let settled = false;
    const settle = (code: number | null) => {
      if (settled) return;
      settled = true;
      run.code = code;
      if (run.failure === null && !run.cancelled) failOnExit(run, ssh, command, held);
      if (run.failure === null && !run.cancelled) held.splice(0).forEach(relay);
      if (!run.cancelled) io.onEnd(run);
      resolve(run);
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      fail(run, `cannot run ${ssh}: ${err.code ?? err.message}`);
      settle(null);
    });
    child.on('close', (code) => settle(code));
    // Its answer is not needed: stop reading (what the transport started may hold the pipes open).
    cancel = () => {
      run.cancelled = true;
      child.kill('SIGTERM');
      child.stdout?.destroy();
      child.stderr?.destroy();
      settle(null);
    };
  });
  return { run, done, cancel: () => cancel() };
}

function fail(run: HostRun, reason: string): void {
  if (run.failure !== null) return;
  run.failure = oneLine(reason.replace(/\s*\n\s*/g, ' '));
  try {
    run.child?.kill('SIGTERM');
  } catch {}
}

/** Calls onLine with each whole line of a stream (a last unterminated one included). */
function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void, onTooLong: () => void): void {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  stream.on('data', (chunk: Buffer) => {
    let start = 0;
    for (let nl = chunk.indexOf(10); nl >= 0; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      const line = pendingBytes > 0 ? Buffer.concat([...pending, piece]) : piece;
      pending = [];
      pendingBytes = 0;
      onLine(line.toString('utf8'));
      start = nl + 1;
    }
    if (start < chunk.length) {
      pending.push(chunk.subarray(start));
      pendingBytes += chunk.length - start;
      if (pendingBytes > MAX_LINE) {
        pending = [];
        pendingBytes = 0;
        onTooLong();
      }
    }
  });
  stream.on('end', () => pendingBytes > 0 && onLine(Buffer.concat(pending).toString('utf8')));
}

function parseObject(line: string): Record<string, unknown> | null {
  try {
    const value = JSON.parse(line);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? value : null;
  } catch {
    return null;
  }
}

/** 0 when every host answered 0; 2 or 3 when every host said so (bad usage, no such job); else 1. */
function combinedCode(runs: HostRun[]): number {
  const bad = runs.filter((r) => r.failure !== null || r.code !== 0);
  if (bad.length === 0) return 0;
  const first = bad[0].code;
  const unanimous = bad.length === runs.length && bad.every((r) => r.failure === null && r.code === first);
  return unanimous && (first === 2 || first === 3) ? first : 1;
}

/** What each host is asked: the command line's words, and for some hosts NDJSON on stdin. */
interface Selection {
  argv: string[];
  /** host -> the stdin records meant for it; null: every host, stdin /dev/null */
  inputs: Map<string, string> | null;
  /** the names given as arguments (none when read from stdin) */
  names: string[];
}

const READS_STDIN_WHEN_EMPTY: ReadonlySet<HostCommand> = new Set(['bgmon-wait', 'bgmon-tail', 'bgmon-stop']);

async function selection(command: HostCommand, args: Args, hosts: string[]): Promise<Selection> {
  const argv = withoutHostFlag(process.argv.slice(2));
  const names = args._.map(String);
  if (names.length === 1 && names[0] === '-') return { argv, inputs: await stdinByHost(hosts), names: [] };
  if (names.includes('-')) throw new UsageError('"-" (read names from stdin) must be the only name');
  for (const name of names) nameMatcher(name); // bad names are exit 2 here, not once per host
  if (names.length > 0 || !READS_STDIN_WHEN_EMPTY.has(command)) return { argv, inputs: null, names };
  if (isTty(0)) throw new UsageError('no job names given (and stdin is a terminal)');
  return { argv, inputs: await stdinByHost(hosts), names: [] };
}

/**
 * Stdin's NDJSON records grouped by their `host` field, each group for that host's stdin. A
 * record without `host` goes to every host; one naming a host not asked for is a usage error
 * (a local record names this machine, which must not be acted on elsewhere). Any bad line
 * rejects the whole input, before any host is asked anything.
 */
async function stdinByHost(hosts: string[]): Promise<Map<string, string>> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const groups = new Map<string, string>();
  const add = (host: string, line: string) => groups.set(host, (groups.get(host) ?? '') + line + '\n');
  const text = Buffer.concat(chunks).toString('utf8').split('\n');
  for (let i = 0; i < text.length; i++) {
    const line = text[i];
    if (line.trim() === '') continue;
    const rec = parseObject(line);
    if (rec === null) throw new UsageError(`stdin line ${i + 1}: not a JSON object`);
    if (!isValidName(rec.name)) throw new UsageError(`stdin line ${i + 1}: no valid "name" field`);
    if (rec.host === undefined || rec.host === null) hosts.forEach((h) => add(h, line));
    else if (typeof rec.host === 'string' && hosts.includes(rec.host)) add(rec.host, line);
    else {
      const host = JSON.stringify(rec.host);
      throw new UsageError(`stdin line ${i + 1}: host ${host} is not one of the hosts asked for (${hosts.join(',')})`);
    }
  }
  return groups;
}

/** Ends what is still running when we are interrupted, then dies of the same signal's code. */
function endOnSignal(runs: HostRun[]): void {
  for (const [sig, n] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.on(sig, () => {
      for (const run of runs) run.child?.kill('SIGTERM');
      process.exit(128 + n);
    });
  }
}

/** Starts the command on every selected host at once; `done` resolves once all have ended. */
interface FannedOut {
  runs: HostRun[];
  cancel: (run: HostRun) => void;
  done: Promise<HostRun[]>;
}

function fanOut(command: HostCommand, hosts: string[], sel: Selection, io: Omit<HostIo, 'input' | 'argv'>): FannedOut {
  const targets = sel.inputs === null ? hosts : hosts.filter((h) => sel.inputs!.has(h));
  const input = (h: string) => sel.inputs?.get(h) ?? null;
  const started = targets.map((h) => runOnHost(command, h, { ...io, argv: sel.argv, input: input(h) }));
  const runs = started.map((s) => s.run);
  endOnSignal(runs);
  const cancel = (run: HostRun) => started[runs.indexOf(run)].cancel();
  return { runs, cancel, done: Promise.all(started.map((s) => s.done)) };
}

/** The usual report when a host has ended: its failure, or a non-zero exit it gave no reason for. */
function reportEnd(command: HostCommand, run: HostRun): void {
  if (run.failure !== null) warn(command, `host ${run.host}: ${run.failure}`);
  else if (run.code !== 0 && run.relayed === 0) warn(command, `host ${run.host}: exited ${run.code}`);
}

/** A record from a host, with `host` set to the host's name as given. */
function tagged(run: HostRun, line: string): Record<string, unknown> | null {
  const rec = parseObject(line);
  if (rec === null || typeof rec.name !== 'string') return null;
  rec.host = run.host;
  return rec;
}

/**
 * Runs bgmon-status, -wait, -tail or -stop on each host (see the README, "Several hosts") and
 * returns the exit code of the whole.
 */
export async function runOnHosts(command: HostCommand, hosts: string[], args: Args): Promise<number> {
  const sel = await selection(command, args, hosts);
  if (sel.inputs !== null && sel.inputs.size === 0) {
    if (command !== 'bgmon-wait') return 0; // an empty selection: nothing to do
    warn(command, 'no jobs to wait for (stdin held no records)');
    return 3;
  }
  if (command === 'bgmon-status') return statusOnHosts(hosts, sel, args);
  if (command === 'bgmon-wait') return waitOnHosts(hosts, sel, args);
  if (command === 'bgmon-tail') return tailOnHosts(hosts, sel, args);
  return stopOnHosts(hosts, sel);
}

async function statusOnHosts(hosts: string[], sel: Selection, args: Args): Promise<number> {
  const asTable = outputMode(args) === 'table';
  const rows: { host: string; rec: JobRecord }[] = [];
  const argv = ['--json', ...sel.argv.filter((a) => a !== '--json' && a !== '--table')];
  const runs = await fanOut(
    'bgmon-status',
    hosts,
    { ...sel, argv },
    {
      raw: false,
      onLine: (run, line) => {
        const rec = tagged(run, line);
        if (rec === null) return false;
        if (asTable) rows.push({ host: run.host, rec: rec as unknown as JobRecord });
        else out(JSON.stringify(rec) + '\n');
        return true;
      },
      onEnd: (run) => reportEnd('bgmon-status', run),
    },
  ).done;
  if (asTable) {
    rows.sort((a, b) => hosts.indexOf(a.host) - hosts.indexOf(b.host)); // stable: each host's own order
    out(hostTable(rows));
  }
  return combinedCode(runs);
}

/** The usual table with a HOST column in front. */
function hostTable(rows: { host: string; rec: JobRecord }[]): string {
  const width = Math.max(4, ...rows.map((r) => r.host.length));
  const lines = table(rows.map((r) => r.rec)).split('\n');
  const hostOf = (i: number) => (i === 0 ? 'HOST' : rows[i - 1].host);
  return lines.map((l, i) => (i <= rows.length ? `${hostOf(i).padEnd(width)}  ${l}` : l)).join('\n');
}

async function stopOnHosts(hosts: string[], sel: Selection): Promise<number> {
  const runs = await fanOut('bgmon-stop', hosts, sel, {
    raw: false,
    onLine: (run, line) => {
      const rec = tagged(run, line);
      if (rec !== null) out(JSON.stringify(rec) + '\n');
      return rec !== null;
    },
    onEnd: (run) => reportEnd('bgmon-stop', run),
  }).done;
  return combinedCode(runs);
}

/**
 * One host asked for one plain name: its bytes as they are (as bgmon-tail prints one job);
 * otherwise records from each host, printed as `HOST:NAME | line` or, with --json, with `host`.
 */
async function tailOnHosts(hosts: string[], sel: Selection, args: Args): Promise<number> {
  const json = Boolean(args.json);
  const raw = !json && hosts.length === 1 && sel.inputs === null && sel.names.length === 1 && !isGlob(sel.names[0]);
  const runs = await fanOut(
    'bgmon-tail',
    hosts,
    { ...sel, argv: raw ? sel.argv : ['--json', ...sel.argv] },
    {
      raw,
      onLine: (run, line) => {
        const rec = tagged(run, line);
        if (rec === null || typeof rec.line !== 'string') return false;
        out(json ? JSON.stringify(rec) + '\n' : `${run.host}:${rec.name} | ${rec.line}\n`);
        return true;
      },
      onEnd: (run) => reportEnd('bgmon-tail', run),
    },
  ).done;
  return combinedCode(runs);
}

/**
 * Each host's bgmon-wait prints its records when it returns; they are printed as each host
 * returns. With --any the first host whose job ended settles it and the others are ended.
 * Exit: a host that could not answer (or had no such job, or whose exit code its records do
 * not explain: a connection lost part-way) makes it 1, or 3 (2) when every host said no such
 * job (bad usage); else 124 if any host timed out; with --until or --idle the hosts' own code
 * when they agree; else the usual rule over all hosts' records together (one job: its own
 * code; several: 0 if all SUCCEEDED, else 1).
 */
async function waitOnHosts(hosts: string[], sel: Selection, args: Args): Promise<number> {
  const any = Boolean(args.any);
  const until = args.until !== undefined;
  const answers = new Map<HostRun, Record<string, unknown>[]>();
  const printed: Record<string, unknown>[] = [];
  let settled = false;
  const started = fanOut('bgmon-wait', hosts, sel, {
    raw: false,
    onLine: (run, line) => {
      const rec = tagged(run, line);
      if (rec !== null) answers.set(run, [...(answers.get(run) ?? []), rec]);
      return rec !== null;
    },
    onEnd: (run) => {
      const recs = run.failure === null ? (answers.get(run) ?? []) : [];
      if (recs.length > 0 && run.code !== 124 && run.code !== IDLE && run.code !== remoteWaitCode(recs, until)) {
        // a transport that failed after some output (ssh exits 255): what is missing is unknown
        run.failure = `exited ${run.code} part-way (after ${recs.length} record(s)): its answer is incomplete`;
        answers.delete(run);
      }
      if (recs.length === 0 || run.failure !== null) {
        if (run.failure === null && run.code === 0) run.failure = 'answered with no records';
        return reportEnd('bgmon-wait', run);
      }
      if (settled) return;
      out(recs.map((r) => JSON.stringify(r) + '\n').join(''));
      printed.push(...recs);
      if (!any || run.code === 124) return;
      settled = true;
      for (const other of started.runs) {
        if (other !== run && other.code === null && other.failure === null) started.cancel(other);
      }
    },
  });
  const runs = (await started.done).filter((r) => !r.cancelled);
  const failed = runs.filter((r) => r.failure !== null || !answers.has(r));
  if (failed.length > 0) {
    const first = failed[0].code;
    const unanimous = failed.length === runs.length && failed.every((r) => r.failure === null && r.code === first);
    return unanimous && (first === 2 || first === 3) ? first : 1;
  }
  if (runs.some((r) => r.code === 124)) return 124;
  // --until and --idle answer with the remote's own code (a matched line is no record to judge)
  if (until || args.idle !== undefined) return runs.every((r) => r.code === runs[0].code) ? runs[0].code! : 1;
  return waitExitCode(printed as unknown as JobRecord[]);
}

/** bgmon-wait's exit --idle: a RUNNING job was silent for DUR. */
const IDLE = 125;

/** The code a host's bgmon-wait exits with for what it printed (wait.ts's rules). */
function remoteWaitCode(recs: Record<string, unknown>[], until: boolean): number {
  const jobs = recs as unknown as JobRecord[];
  if (!until) return waitExitCode(jobs);
  if (recs.some((r) => typeof r.line === 'string')) return 0; // the matching line
  return jobs.length === 1 && jobs[0].status === 'SUCCEEDED' ? 1 : waitExitCode(jobs);
}

/**
 * runCommand for the commands that also run on other hosts: with --host (or BGMON_HOSTS) the
 * arguments go to each host as given, and `main` runs only for the local case.
 */
export function runHostedCommand(doc: CommandDoc, version: string, main: (args: Args) => Promise<number | void>): void {
  runCommand(commandSpec(doc, version), (args) => {
    const hosts = requestedHosts(args);
    return hosts ? runOnHosts(doc.name as HostCommand, hosts, args) : main(args);
  });
}
