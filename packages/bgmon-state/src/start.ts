import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { hashHex, randomHex } from './random';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { ExecError, StateError, UsageError } from './errors';
import { assertName, deriveName } from './names';
import { ensureHome, logPath, previousLogPath, recordPath, sparePath, stopMarkerPath, type Home } from './paths';
import { bootId, readStat } from './proc';
import { isTerminal, readRecord, writeRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { SUPERVISOR_SH } from './supervisor';
import { planAfter, enqueue, removeQueueEntry } from './queue';
import { unlinkQuietly } from './fsutil';

export interface StartOptions {
  name?: string;
  cwd?: string;
  /** K=V strings from --env */
  env: string[];
  after: string[];
  cmd: string[];
}

export function newRunId(): string {
  return `${Date.now().toString(36)}-${randomHex(8)}`;
}

export function nowIso(): string {
  return new Date().toISOString();
}

function resolveCwd(dir: string | undefined): string {
  const cwd = resolve(dir ?? process.cwd());
  let ok = false;
  try {
    ok = statSync(cwd).isDirectory();
  } catch {}
  if (!ok) throw new UsageError(`--cwd ${cwd}: not a directory`);
  return cwd;
}

export function jobEnvironment(base: NodeJS.ProcessEnv, assignments: string[]): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const kv of assignments) {
    const eq = kv.indexOf('=');
    const key = eq > 0 ? kv.slice(0, eq) : '';
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new UsageError(`--env ${JSON.stringify(kv)}: expected KEY=VALUE`);
    env[key] = kv.slice(eq + 1);
  }
  return env;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves CMD as execvp would, so a missing command fails here (127) and not inside the job. */
export function resolveExecutable(file: string, pathVar: string | undefined, cwd: string): string {
  if (file.includes('/')) {
    const path = resolve(cwd, file);
    if (isExecutableFile(path)) return path;
    throw new ExecError(existsSync(path) ? `${file}: permission denied or not a file` : `${file}: no such file`);
  }
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const path = resolve(cwd, dir || '.', file);
    if (isExecutableFile(path)) return path;
  }
  throw new ExecError(`${file}: command not found`);
}

/** Starts (or queues, or cancels) a job and returns its record as written. */
export async function startJob(home: Home, opts: StartOptions): Promise<JobRecord> {
  if (opts.cmd.length === 0) throw new UsageError('no command given: bgmon-start [options] -- CMD [ARG...]');
  if (opts.name !== undefined) assertName(opts.name);
  opts.after.forEach(assertName);
  const cwd = resolveCwd(opts.cwd);
  const env = jobEnvironment(process.env, opts.env);
  resolveExecutable(opts.cmd[0], env.PATH, cwd);
  ensureHome(home);
  const name = opts.name ?? deriveName(opts.cmd, (n) => existsSync(recordPath(home, n)));
  const held = await lock(home, name);
  try {
    const old = readRecordForReplace(home, name);
    const plan = planAfter(home, name, opts.after);
    const id = newRunId();
    Object.assign(env, { BGMON_JOB: name, BGMON_JOB_ID: id, BGMON_HOME: home.root });
    const rec: JobRecord = {
      v: 1, name, id, status: 'QUEUED', cmd: opts.cmd, cwd, pid: null,
      created_at: nowIso(), started_at: null, ended_at: null, exit_code: null, signal: null,
      log: logPath(home, name), previous_log: old ? keepLog(home, old) : null,
      after: [...new Set(opts.after)], host: hostname(), boot_id: null, starttime: null, sup_pid: null, sup_starttime: null,
    };
    unlinkQuietly(stopMarkerPath(home, name));
    removeQueueEntry(home, name);
    if (plan === 'cancel') {
      const cancelled: JobRecord = { ...rec, status: 'CANCELLED', ended_at: nowIso() };
      writeRecord(home, cancelled);
      return cancelled;
    }
    if (plan === 'queue') {
      enqueue(home, rec, env);
      return rec;
    }
    return await launch(home, rec, env);
  } finally {
    unlock(held);
  }
}

/** The existing record of a name about to be reused: refused while it is live or unreadable. */
function readRecordForReplace(home: Home, name: string): JobRecord | null {
  let old: JobRecord | null;
  try {
    old = readRecord(home, name);
  } catch (err) {
    throw new StateError(`${(err as Error).message}; remove it with bgmon-rm ${name} before reusing the name`);
  }
  const status = old && currentState(home, old).status;
  if (status && !isTerminal(status)) throw new StateError(`job ${name} is ${status}; stop it or pick another name`);
  return old;
}

/** Keeps the log of the run being replaced beside the new one, under the old run's id. */
function keepLog(home: Home, old: JobRecord): string | null {
  const kept = previousLogPath(home, old.name, old.id);
  try {
    renameSync(logPath(home, old.name), kept);
    return kept;
  } catch {
    return null;
  }
}

function supervisorScript(home: Home): string {
  const file = join(home.run, `supervisor-${hashHex(SUPERVISOR_SH)}.sh`);
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, SUPERVISOR_SH, { mode: 0o600 });
    renameSync(tmp, file);
  }
  return file;
}

function readPidLine(child: ChildProcess): Promise<number> {
  return new Promise((resolvePid, reject) => {
    let text = '';
    const fail = () => reject(new StateError('the supervisor could not start the job'));
    child.once('error', (err) => reject(new StateError(`cannot start the supervisor: ${err.message}`)));
    child.once('exit', fail);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      child.removeListener('exit', fail);
      const pid = Number(text.slice(0, nl));
      if (Number.isSafeInteger(pid) && pid > 0) resolvePid(pid);
      else fail();
    });
  });
}

/**
 * Spawns the supervisor and the job, writes the RUNNING record, then lets the job run.
 * The caller holds the name's lock.
 */
export async function launch(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): Promise<JobRecord> {
  writeFileSync(rec.log, '', { mode: 0o600, flag: 'w' });
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const child = spawn(
    '/bin/sh',
    [supervisorScript(home), recordPath(home, rec.name), sparePath(home, rec.name), rec.log, stopMarkerPath(home, rec.name), rec.id, home.run, process.execPath, advanceEntry(), ...rec.cmd],
    { cwd: rec.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'ignore', 'pipe'] },
  );
  const gate = child.stdio[3] as NodeJS.WritableStream;
  try {
    const pid = await readPidLine(child);
    const job = readStat(pid);
    const sup = readStat(child.pid!);
    if (!job || !sup) throw new StateError('the job vanished before it started');
    const running: JobRecord = {
      ...rec, status: 'RUNNING', pid, started_at: nowIso(), boot_id: bootId(), starttime: job.starttime,
      sup_pid: child.pid!, sup_starttime: sup.starttime,
    };
    const text = JSON.stringify(running);
    // Room for the final record, reserved now so the end can be written even on a full disk.
    writeFileSync(sparePath(home, rec.name), Buffer.alloc(Buffer.byteLength(text) + 4096, 32), { mode: 0o600 });
    writeRecord(home, running);
    await new Promise<void>((done) => gate.end('go\n', done));
    return running;
  } finally {
    // Without "go" the job's process exits without running the command.
    child.stdout!.destroy();
    (gate as unknown as { destroy(): void }).destroy();
    child.unref();
  }
}

/** The script a supervisor runs to advance the queue: this very binary, with --advance-queue. */
function advanceEntry(): string {
  return resolve(process.argv[1] ?? '');
}
