import type { ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { closeSync, constants, openSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { StateError, UsageError } from './errors';
import { endPath, reserveEnd, reserveSpare, sparePath } from './end';
import { unlinkQuietly } from './fsutil';
import type { Home } from './paths';
import { bootId, readStat, type ProcStat } from './proc';
import { nowIso, writeRecord, type JobRecord } from './record';
import { attemptsOf, supervisorRetryArgs } from './retry';
import { resolveExecutable } from './exec';
import { shellQuote } from './output';

/*
 * Launching a job: spawn its supervisor (supervisor.sh), which forks the job; the job becomes
 * leader of its own session, reports its pid and blocks on the gate until the RUNNING record is
 * on disk, so user code never runs without a record and, once bgmon-start returns,
 * pid = pgid = sid holds. The job's log and end file are opened here, never through a link, and
 * handed to the supervisor as descriptors: no shell opens a path of ours.
 */

declare const __SUPERVISOR_SH__: string | undefined;

const HELD_SIGNALS = ['SIGHUP', 'SIGINT', 'SIGTERM'] as const;

let script: string | undefined;
/** The supervisor's text: inlined by the build, read beside this file when run from source. */
function supervisorText(): string {
  const text =
    typeof __SUPERVISOR_SH__ === 'string' ? __SUPERVISOR_SH__ : readFileSync(join(__dirname, 'supervisor.sh'), 'utf8');
  // comments stay in the file: the argv that ps shows carries only the code
  script ??= text.replace(/^\s*#.*\n/gm, '');
  return script;
}

/** A new, empty log: whatever sits at the path (a kept-log leftover, a planted link) is unlinked, not followed. */
function createLog(path: string): number {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  try {
    return openSync(path, flags, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    unlinkQuietly(path);
    return openSync(path, flags, 0o600);
  }
}

function assertDirectory(cwd: string): void {
  let ok = false;
  try {
    ok = statSync(cwd).isDirectory();
  } catch {}
  if (!ok) throw new StateError(`cannot start in ${cwd}: no such directory`);
}

function spawnError(err: NodeJS.ErrnoException): StateError {
  const why = err.code === 'E2BIG' ? 'the command line is longer than the kernel allows' : err.message;
  return new StateError(`cannot start the job: ${why}`);
}

/**
 * The job's pid, which the job itself writes on the supervisor's fd 3 once it leads its own session.
 * One socket carries that line to us and "go" back (a second pipe cost every start ~0.2 ms).
 */
function readPidLine(child: ChildProcess): Promise<number> {
  const channel = child.stdio[3] as Socket;
  return new Promise((resolvePid, reject) => {
    let text = '';
    const fail = () => reject(new StateError('the supervisor could not start the job'));
    child.once('error', (err: NodeJS.ErrnoException) => reject(spawnError(err)));
    child.once('exit', fail);
    channel.once('end', fail);
    channel.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      child.removeListener('exit', fail);
      channel.removeListener('end', fail);
      const pid = Number(text.slice(0, nl));
      if (Number.isSafeInteger(pid) && pid > 1) resolvePid(pid);
      else fail();
    });
  });
}

/** The home's run/ directory for a retrying supervisor, which lists stop markers there; else nothing. */
function openRunDir(home: Home, rec: JobRecord): number | null {
  if (!rec.retry) return null;
  return openSync(home.run, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
}

type Launchable = Pick<JobRecord, 'name' | 'id' | 'cmd' | 'retry' | 'cwd'> &
  Partial<Pick<JobRecord, 'queue' | 'queue_seq' | 'on_end'>>;

/**
 * The supervisor's hand-off words (see supervisor.sh): QUEUE (empty when its run's end needs Node:
 * a hook, retries), SLOT, SEQ. The home is the job's BGMON_HOME, which bgmon-start always sets.
 */
function handOffArgs(rec: Launchable, slot: number): string[] {
  const hands = rec.queue != null && !rec.retry && rec.on_end == null && slot > 0;
  return hands ? [rec.queue!, String(slot), String(rec.queue_seq ?? 0)] : ['', '0', '0'];
}
let assigned: Set<string> | undefined;
/**
 * The names supervisor.sh (or the job's shell before its command) assigns: sh exports an imported
 * name with the last value it set, so the job would see the supervisor's values. Not IFS (sh resets
 * it on import, as for every job), LC_ALL (env gives it back) nor the marker (the job's own).
 */
function assignedNames(): Set<string> {
  if (assigned) return assigned;
  const text = supervisorText();
  const names = [...text.matchAll(/(?:^|[\s;(|&])([A-Za-z_]\w*)=/g)].map((m) => m[1]);
  for (const m of text.matchAll(/\bread -r ((?:[A-Za-z_]\w* ?)+)/g)) names.push(...m[1].trim().split(' '));
  for (const m of text.matchAll(/\bfor ([A-Za-z_]\w*) in /g)) names.push(m[1]);
  assigned = new Set(names.filter((n) => !['IFS', 'LC_ALL', 'BGMON_JOB_ID'].includes(n)));
  return assigned;
}

/**
 * BGMON_RESTORE, which the job's shell evaluates before its command (see supervisor.sh): the job's
 * own values of the names the supervisor assigns, then its own BGMON_RESTORE or none. In the
 * environment, not in argv, which every user can read.
 */
function restoreText(env: NodeJS.ProcessEnv): string {
  const names = assignedNames();
  const own =
    env.BGMON_RESTORE === undefined ? 'unset BGMON_RESTORE' : `BGMON_RESTORE=${shellQuote(env.BGMON_RESTORE)}`;
  return Object.entries(env)
    .filter(([k, v]) => v !== undefined && names.has(k))
    .map(([k, v]) => `${k}=${shellQuote(v!)}; `)
    .concat(own)
    .join('');
}

/** What the hand-off words may add to an exec: a queue name, a slot and a SEQ, with NULs and pointers. */
const HANDOFF_SLACK = 128 + 6 + 16 + 3 * 9;

/** The supervisor's argv after /bin/sh, and its environment (the job's, without the marker). */
function supervisorExec(rec: Launchable, env: NodeJS.ProcessEnv, slot = 0): { args: string[]; env: NodeJS.ProcessEnv } {
  // the marker is the job's alone: nothing of bgmon's may be mistaken for the job by bgmon-stop
  const { BGMON_JOB_ID: _marker, ...supervisorEnv } = env;
  const args = [
    '-c',
    supervisorText(),
    'bgmon-supervisor',
    rec.name,
    rec.id,
    process.execPath,
    entryScript(),
    ...supervisorRetryArgs(rec),
    ...handOffArgs(rec, slot),
    ...rec.cmd,
  ];
  return { args, env: { ...supervisorEnv, BGMON_RESTORE: restoreText(supervisorEnv) } };
}

/** One argv or environment string, with its NUL, at most (MAX_ARG_STRLEN: 32 pages of 4 KiB). */
const MAX_ARG_STRLEN = 32 * 4096;
/**
 * A queued job is launched later, maybe by another bgmon binary, whose entry path (in the
 * supervisor's argv) may be up to this many bytes longer: bgmon-signal's against bgmon-rm's, twice.
 */
const ENTRY_SLACK = 8;

let limit: number | undefined;
/** What the strings of one exec may take: a quarter of the stack limit, within 128 KiB..6 MiB (fs/exec.c). */
function execLimit(): number {
  if (limit !== undefined) return limit;
  const m = /^Max stack size\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const quarter = !m || m[1] === 'unlimited' ? Infinity : Number(m[1]) / 4;
  limit = Math.max(Math.min(((8 * 2 ** 20) / 4) * 3, quarter), MAX_ARG_STRLEN);
  return limit;
}

/**
 * True when no exec of this launch can come near the smallest limit the kernel ever sets (128 KiB),
 * by a bound taken without a system call: each string at 3 bytes a UTF-16 unit plus its NUL and
 * pointer, the supervisor's text, and 4 KiB each for the paths an exec adds (node, its entry, the
 * tools, PWD, the command's file). Nearly every start is decided here; the rest are counted exactly.
 */
function surelyFits(rec: Launchable, env: NodeJS.ProcessEnv): boolean {
  let bound = supervisorText().length * 3 + 6 * 4096 + 1024 + HANDOFF_SLACK;
  const add = (s: string) => {
    const bytes = s.length * 3 + 9;
    bound += bytes;
    return bytes < MAX_ARG_STRLEN - 4096;
  };
  if (![rec.name, rec.id, `BGMON_RESTORE=${restoreText(env)}`, ...rec.cmd].every(add)) return false;
  for (const key in env) if (!add(`${key}=${env[key] ?? ''}`)) return false;
  return bound < MAX_ARG_STRLEN;
}

/** One execve: the file name, argv and environment the kernel copies. */
interface Exec {
  file: string;
  argv: string[];
  env: NodeJS.ProcessEnv;
}

/** PWD as /bin/sh exports it, started in cwd: the inherited one when it names cwd, else the physical path. */
function shellPwd(env: NodeJS.ProcessEnv, cwd: string): string {
  try {
    const here = statSync(cwd);
    const pwd = env.PWD?.startsWith('/') ? statSync(env.PWD) : null;
    return pwd && pwd.dev === here.dev && pwd.ino === here.ino ? env.PWD! : realpathSync(cwd);
  } catch {
    return cwd;
  }
}

/** The path a shell execs for `file` (the longest a bare name can resolve to, when not found). */
function execFile(file: string, pathVar: string | undefined, cwd: string): string {
  try {
    return resolveExecutable(file, pathVar, cwd);
  } catch {
    return resolve(cwd, file);
  }
}

/**
 * Every exec between bgmon-start and the job, as supervisor.sh makes them: the supervisor; then
 * `LC_ALL=C setsid -- env ... "$lc" /bin/sh -c SCRIPT` (counted once, with the longer of the two
 * tools' paths: each later exec of that chain drops words, and the last puts the caller's LC_ALL
 * back in place of its word); then the job's own command. The shell exports PWD (the job's
 * directory, which may be longer than the caller's) and the job gets the marker.
 */
function launchExecs(rec: Launchable, env: NodeJS.ProcessEnv): Exec[] {
  const sup = supervisorExec(rec, env);
  const shellEnv: NodeJS.ProcessEnv = { ...sup.env, PWD: shellPwd(sup.env, rec.cwd) };
  const chain = /exec (setsid [^'\n]*) '([^']*)' bgmon-job /.exec(supervisorText());
  const lc = sup.env.LC_ALL === undefined ? '--unset=LC_ALL' : `LC_ALL=${sup.env.LC_ALL}`;
  const words = chain
    ? [...chain[1].split(' ').map((w) => (w === '"$lc"' ? lc : w)), chain[2]]
    : ['setsid', lc, supervisorText()];
  const tools = ['env', 'setsid'].map((tool) => execFile(tool, shellEnv.PATH, rec.cwd));
  return [
    { file: '/bin/sh', argv: ['/bin/sh', ...sup.args], env: sup.env },
    {
      file: tools.reduce((a, b) => (Buffer.byteLength(b) > Buffer.byteLength(a) ? b : a)),
      argv: [...words, 'bgmon-job', rec.id, 'gated', ...rec.cmd],
      env: { ...shellEnv, LC_ALL: 'C' },
    },
    { file: execFile(rec.cmd[0], env.PATH, rec.cwd), argv: rec.cmd, env: { ...env, PWD: shellEnv.PWD } },
  ];
}

/** What one exec takes of the kernel's limit: every string with its NUL (the file name too), a pointer each. */
function execSize(exec: Exec): { total: number; longest: number } {
  const envStrings = Object.entries(exec.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
  const sizes = [exec.file, ...exec.argv, ...envStrings].map((s) => Buffer.byteLength(s) + 1);
  const total = sizes.reduce((a, b) => a + b, 0) + (sizes.length - 1) * 8 + ENTRY_SLACK + HANDOFF_SLACK;
  return { total, longest: Math.max(...sizes) };
}

/**
 * Throws a UsageError when an exec of this job's launch would fail (E2BIG): the supervisor's, the
 * chain to the job, or the job's command, each counted as the kernel counts it.
 * `bgmon-start -` checks each line with it, so that a batch starts nothing when one line cannot.
 */
export function assertLaunchable(rec: Launchable, env: NodeJS.ProcessEnv): void {
  if (surelyFits(rec, env)) return;
  const sizes = launchExecs(rec, env).map(execSize);
  const longest = Math.max(...sizes.map((s) => s.longest));
  if (longest > MAX_ARG_STRLEN)
    throw new UsageError(`the command line has a word of ${longest - 1} bytes; the kernel takes ${MAX_ARG_STRLEN - 1}`);
  const total = Math.max(...sizes.map((s) => s.total));
  const limit = execLimit();
  if (total > limit)
    throw new UsageError(`the command line and environment take ${total} bytes; the kernel takes ${limit}`);
}

/** assertLaunchable for one bgmon-start: refused as the spawn would refuse it (exit 1), before anything is written. */
export function assertExecFits(rec: Launchable, env: NodeJS.ProcessEnv): void {
  try {
    assertLaunchable(rec, env);
  } catch (err) {
    throw err instanceof UsageError ? spawnError({ code: 'E2BIG' } as NodeJS.ErrnoException) : err;
  }
}

function spawnSupervisor(rec: JobRecord, env: NodeJS.ProcessEnv, fds: number[], slot: number): ChildProcess {
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const { args, env: supervisorEnv } = supervisorExec(rec, env, slot);
  try {
    return spawn('/bin/sh', args, {
      cwd: rec.cwd,
      env: supervisorEnv,
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'pipe', ...fds],
    });
  } catch (err) {
    // some failures (E2BIG: the supervisor's argv is the command's plus its script) throw here
    throw spawnError(err as NodeJS.ErrnoException);
  }
}

/** The RUNNING record of a launched run. */
function runningRecord(rec: JobRecord, pid: number, starttime: number, supPid: number, supStart: number): JobRecord {
  return {
    ...rec,
    status: 'RUNNING',
    pid,
    started_at: nowIso(),
    boot_id: bootId(),
    starttime,
    sup_pid: supPid,
    sup_starttime: supStart,
    ...(rec.retry ? { attempt: 1, attempts: [], next_attempt_at: null } : {}),
  };
}

/** The largest pid Linux hands out (PID_MAX_LIMIT), and more start-time digits than any uptime needs. */
const LONGEST_PID = 2 ** 22;
const LONGEST_STARTTIME = Number.MAX_SAFE_INTEGER;

/** Room for the folded record: the RUNNING one with the longest pids and start times, and every attempt's end. */
function spareBytes(rec: JobRecord): number {
  const longest = runningRecord(rec, LONGEST_PID, LONGEST_STARTTIME, LONGEST_PID, LONGEST_STARTTIME);
  return Buffer.byteLength(JSON.stringify(longest)) + (rec.retry ? attemptsOf(rec) * 120 : 0);
}

/** The job, once it leads its own session (as it says when it reports its pid), and its supervisor. */
async function startedJob(child: ChildProcess, pidLine: Promise<number>): Promise<[number, ProcStat, ProcStat]> {
  const pid = await pidLine;
  const job = readStat(pid);
  const sup = readStat(child.pid!);
  if (!job || !sup) throw new StateError('the job vanished before it started');
  if (job.session !== pid || job.pgrp !== pid) throw new StateError('the job could not get a session of its own');
  return [pid, job, sup];
}

/**
 * Writes the RUNNING record, then sends "go". Once the record says RUNNING the job must run: a
 * terminal closing (SIGHUP) or a Ctrl-C in the millisecond before "go" would otherwise leave a
 * RUNNING record for a command that never ran (it exits 125). Past "go" the default actions apply again.
 */
async function recordAndGo(home: Home, running: JobRecord, channel: Socket, recorded: () => void): Promise<void> {
  const hold = () => {};
  for (const sig of HELD_SIGNALS) process.on(sig, hold);
  try {
    writeRecord(home, running);
    recorded();
    await new Promise<void>((done) => channel.end('go\n', done));
  } finally {
    for (const sig of HELD_SIGNALS) process.removeListener(sig, hold);
  }
}

/**
 * Spawns the supervisor and the job, writes the RUNNING record, then lets the job run.
 * The caller holds the name's lock (and, with a slot, its queue's). Throws a StateError when the job cannot start (the command
 * then never runs).
 */
export async function launch(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv, slot = 0): Promise<JobRecord> {
  assertDirectory(rec.cwd);
  const logFd = createLog(rec.log);
  let endFd: number | null = null;
  let runFd: number | null = null;
  let child: ChildProcess | null = null;
  let started = false;
  let recorded = false;
  try {
    endFd = reserveEnd(home, rec.name, rec.id, attemptsOf(rec));
    runFd = openRunDir(home, rec);
    child = spawnSupervisor(rec, env, runFd === null ? [logFd, endFd] : [logFd, endFd, runFd], slot);
    const pidLine = readPidLine(child);
    pidLine.catch(() => {}); // awaited below, unless the spare cannot be made
    // made while the supervisor forks the job and the job execs its way to a session of its own
    reserveSpare(home, rec.name, rec.id, spareBytes(rec));
    const [pid, job, sup] = await startedJob(child, pidLine);
    const running = runningRecord(rec, pid, job.starttime, child.pid!, sup.starttime);
    await recordAndGo(home, running, child.stdio[3] as Socket, () => (recorded = true));
    started = true;
    return running;
  } finally {
    closeSync(logFd);
    if (endFd !== null) closeSync(endFd);
    if (runFd !== null) closeSync(runFd);
    if (child) {
      // Without "go" the job's process exits without running the command. Once it has read "go" it
      // closes its end and the socket closes by itself: destroying it here would also make Node
      // create process.stderr (net checks every socket it closes against it), a cost to every start.
      const channel = child.stdio[3] as Socket | null;
      if (started) channel?.unref();
      else channel?.destroy();
      child.unref();
    }
    if (!started) {
      // the command never ran: with no record naming it, the log created empty here goes too
      if (!recorded) unlinkQuietly(rec.log);
      unlinkQuietly(endPath(home, rec.name, rec.id));
      unlinkQuietly(sparePath(home, rec.name, rec.id));
    }
  }
}

/** What a supervisor runs when its job has ended: this very binary, with --job-ended. */
function entryScript(): string {
  return resolve(process.argv[1] ?? '');
}
