import { readFileSync, realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { constants } from 'node:os';
import type { Home } from './paths';
import {
  environHas,
  environValues,
  envHas,
  envValues,
  isPaused,
  isSameProcess,
  listPids,
  readEnviron,
  readStat,
  type ProcStat,
} from './proc';
import { gathered, isTerminal, nowIso, readRecord, type ActionResult, type JobRecord } from './record';
import { currentState } from './classify';
import { STOP_SIGNALS } from './run-state';
import { withLock } from './lock';
import { removeQueueEntry } from './queue';
import { dropPrepared, preempt } from './handoff';
import { sleep } from './sleep';
import { foldEnd } from './fold';
import { endRetryWait, isBetweenAttempts } from './retry';
import { writeEndedRecord } from './on-end';
import { claimStop, clearStop, confirmStop, isUsableRunId, withdrawStop, type StopClaim } from './stop-marker';

export { removeStopMarkers, wasStopped } from './stop-marker';
// for bgmon-signal, which reaches a job exactly as stop does
export { leadsGroup as leadsOwnGroup, send as killGuarded };

export interface StopOptions {
  signal: number;
  graceMs: number;
}

const POLL_MS = 20;
// After SIGKILL the kernel needs a moment; a process that outlives this is stuck in D state.
const AFTER_KILL_MS = 5000;
// A live supervisor records the end within milliseconds; a loaded machine may take seconds.
const FOLD_WAIT_MS = 10_000;

/** One read of /proc/<pid>/stat for every process: callers group it by job (jobsProcesses). */
export function processTable(): Map<number, ProcStat> {
  const table = new Map<number, ProcStat>();
  for (const pid of listPids()) {
    const st = readStat(pid);
    if (st) table.set(pid, st);
  }
  return table;
}

/** A process the supervisor started for itself (date, mv, the queue's node), not through the job. */
function isSupervisorHelper(table: Map<number, ProcStat>, st: ProcStat, rec: JobRecord): boolean {
  if (!rec.sup_pid) return false;
  let cur: ProcStat | undefined = st;
  for (let hops = 0; cur && hops < 64; hops++, cur = table.get(cur.ppid)) {
    if (cur.pid === rec.pid) return false;
    if (cur.ppid === rec.sup_pid) return true;
    if (cur.ppid <= 1) return false;
  }
  return false;
}

/** Not provably outside the run: alive, not pid 0/1, not us, not its supervisor or helpers, not older. */
function mayBelong(table: Map<number, ProcStat>, st: ProcStat, rec: JobRecord): boolean {
  if (st.pid <= 1 || st.pid === process.pid || st.pid === rec.sup_pid) return false;
  return st.state !== 'Z' && st.starttime >= rec.starttime! && !isSupervisorHelper(table, st, rec);
}

/**
 * Every live process that is provably this run's: in its process group or session, or carrying
 * its BGMON_JOB_ID marker (children that called setsid or daemonized), never older than the job.
 * Never the supervisor or what it runs for itself, never pid 0 or 1, never this process.
 */
export function jobProcesses(rec: JobRecord, table = processTable()): number[] {
  return jobsProcesses([rec], table).get(rec.id) ?? [];
}

/**
 * jobProcesses of many runs from one process table, by run id: each process's environment is
 * read at most once (only when no job's group or session holds it), never once per job.
 */
export function jobsProcesses(recs: readonly JobRecord[], table = processTable()): Map<string, number[]> {
  const live = recs.filter((r) => r.pid !== null && r.pid > 1 && r.starttime !== null);
  const byLeader = new Map(live.map((r) => [r.pid!, r]));
  const byId = new Map(live.map((r) => [r.id, r]));
  const supervisors = new Set(live.map((r) => r.sup_pid));
  const oldest = Math.min(...live.map((r) => r.starttime!));
  const found = new Map<string, number[]>(live.map((r) => [r.id, []]));
  for (const st of table.values()) {
    const leader = byLeader.get(st.pgrp) ?? byLeader.get(st.session);
    if (leader) {
      if (mayBelong(table, st, leader)) found.get(leader.id)!.push(st.pid);
      continue;
    }
    if (st.starttime < oldest || st.state === 'Z' || supervisors.has(st.pid)) continue;
    for (const id of new Set(environValues(st.pid, 'BGMON_JOB_ID'))) {
      const rec = byId.get(id);
      if (rec && mayBelong(table, st, rec)) found.get(rec.id)!.push(st.pid);
    }
  }
  return found;
}

/**
 * How long a signal waits for a job's environment to show while it shows none: a process in the
 * middle of an exec has none (its old memory is released before the new one holds the strings),
 * and a run's command is exec'ed just after its start is recorded. Measured, 4% of the reads of
 * a process just exec'ed are empty; a loaded machine stretches that window.
 */
const EXEC_WAIT_MS = 2000;

/**
 * Why the record's pid must not be signalled as a job, or null when it provably is one: alive as
 * recorded, leading its own group and session, and carrying the run's marker (or, when the job
 * replaced its environment, the child of the recorded supervisor of this home).
 */
export function leaderProblem(home: Home, rec: JobRecord): string | null {
  return leaderCheck(home, rec).problem;
}

/**
 * leaderProblem before a signal: while the refusal comes from an environment that reads empty (an
 * exec in progress), the job is looked at again, for up to EXEC_WAIT_MS, without blocking the
 * other jobs of the same command.
 */
export async function settledLeaderProblem(home: Home, rec: JobRecord): Promise<string | null> {
  const deadline = Date.now() + EXEC_WAIT_MS;
  for (;;) {
    const { problem, bare } = leaderCheck(home, rec);
    if (problem === null || !bare || Date.now() > deadline) return problem;
    await sleep(2);
  }
}

/** The check, with `bare`: its refusal was decided on an environment that read empty. */
function leaderCheck(home: Home, rec: JobRecord): { problem: string | null; bare: boolean } {
  const refused = (problem: string) => ({ problem, bare: false });
  const pid = rec.pid;
  if (pid === null || !Number.isSafeInteger(pid) || pid <= 1)
    return refused(`the record names pid ${pid}, and bgmon never signals pid 0 or 1`);
  if (!isUsableRunId(rec.id)) return refused(`the record's id ${JSON.stringify(rec.id)} is not a bgmon run id`);
  const st = readStat(pid);
  if (!st || !isSameProcess(pid, rec.starttime, rec.boot_id))
    return refused(`pid ${pid} is no longer the recorded process`);
  if (pid === process.pid || st.pgrp !== pid || st.session !== pid)
    return refused(`pid ${pid} does not lead its own process group and session, so it is not a bgmon job`);
  // one read decides: a process in the middle of an exec may show nothing now and all a moment later
  const env = readEnviron(pid);
  if (!carriesRunMarker(home, rec, env) && !isSupervisedHere(home, rec, st)) {
    const marker =
      env !== null && envHas(env, `BGMON_JOB_ID=${rec.id}`)
        ? `BGMON_JOB=${rec.name} with BGMON_HOME=${home.root} (a copied record?)`
        : `BGMON_JOB_ID=${rec.id}`;
    const problem = `pid ${pid} carries no ${marker} and is not the child of this job's supervisor`;
    // a zombie's environment reads empty too, for good: not an exec to wait for
    return { problem, bare: env === '' && st.state !== 'Z' };
  }
  // what was read is the recorded process's (its pid not reused meanwhile)
  if (!isSameProcess(pid, rec.starttime, rec.boot_id)) return refused(`pid ${pid} is no longer the recorded process`);
  return { problem: null, bare: false };
}

/**
 * The run's id alone is not enough: a record copied under another name or into another home has
 * it too, so the job's BGMON_JOB and BGMON_HOME (set by every version) must name this job here.
 */
function carriesRunMarker(home: Home, rec: JobRecord, env: string | null): boolean {
  if (env === null || !envHas(env, `BGMON_JOB_ID=${rec.id}`)) return false;
  const isHere = (dir: string) => {
    try {
      return dir === home.root || realpathSync(dir) === home.root; // an older home path through a link
    } catch {
      return false;
    }
  };
  const names = envValues(env, 'BGMON_JOB');
  return names.every((n) => n === rec.name) && envValues(env, 'BGMON_HOME').every(isHere);
}

/** The recorded supervisor's argv: alive as recorded and leading its own group and session; else null. */
function supervisorArgs(rec: JobRecord): string[] | null {
  const sup = rec.sup_pid;
  if (!sup || sup <= 1 || !isSameProcess(sup, rec.sup_starttime, rec.boot_id)) return null;
  const st = readStat(sup);
  if (!st || st.pgrp !== sup || st.session !== sup) return null;
  try {
    return readFileSync(`/proc/${sup}/cmdline`, 'utf8').split('\0');
  } catch {
    return null;
  }
}

/** Which run a supervisor's argv names (`bgmon-supervisor NAME ID`): this one, another, or none. */
function namedRun(args: string[], rec: JobRecord): 'this' | 'other' | 'none' {
  const at = args.indexOf('bgmon-supervisor');
  if (at < 0) return 'none';
  return args[at + 1] === rec.name && args[at + 2] === rec.id ? 'this' : 'other';
}

function isSupervisedHere(home: Home, rec: JobRecord, job: ProcStat): boolean {
  const args = supervisorArgs(rec);
  // a supervisor's argv names its run: not the supervisor of a run whose record was copied
  if (!args || job.ppid !== rec.sup_pid || namedRun(args, rec) === 'other') return false;
  if (environHas(rec.sup_pid!, `BGMON_HOME=${home.root}`)) return true;
  return args.some((a) => a === home.root || a.startsWith(`${home.root}/`));
}

/**
 * The recorded supervisor is this run's, in this home: only then are its children (the sleep
 * between attempts) ours to end. A forged record could name any process as its supervisor.
 */
function isRetrySupervisor(home: Home, rec: JobRecord): boolean {
  const args = supervisorArgs(rec);
  return args !== null && namedRun(args, rec) === 'this' && environHas(rec.sup_pid!, `BGMON_HOME=${home.root}`);
}

/** The job's leader still leads its group, and we are not in it: kill(-pid) reaches the job only. */
function leadsGroup(rec: JobRecord): boolean {
  const pid = rec.pid!;
  const st = readStat(pid);
  return (
    st !== null &&
    st.pgrp === pid &&
    st.session === pid &&
    isSameProcess(pid, rec.starttime, rec.boot_id) &&
    readStat(process.pid)?.pgrp !== pid
  );
}

/** kill(2) behind guards no record can talk us out of; EPERM is remembered, ESRCH means gone. */
function send(target: number, signal: number, denied: Set<number>): void {
  const pid = Math.abs(target);
  if (!Number.isSafeInteger(target) || pid <= 1 || pid === process.pid) return;
  try {
    process.kill(target, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EPERM') denied.add(pid);
  }
}

interface Outcome {
  /** job processes still alive when we gave up */
  remaining: number[];
  /** pids (or group leaders) whose kill() failed with EPERM */
  denied: Set<number>;
}

/**
 * A stopped process (a PAUSED job, or a child stopped on its own) acts on no signal but KILL
 * until it is continued: SIGCONT after the signal lets it act on it (a TERM trap runs, and exits).
 */
function continueStopped(pids: number[], signal: number, denied: Set<number>): void {
  if (signal === constants.signals.SIGKILL || STOP_SIGNALS.has(signal)) return;
  for (const pid of pids) if (isPaused(pid)) send(pid, constants.signals.SIGCONT, denied);
}

/** Signals the group and every process of the job, escalating to SIGKILL after the grace. */
async function signalUntilGone(rec: JobRecord, opts: StopOptions): Promise<Outcome> {
  const denied = new Set<number>();
  const deadline = Date.now() + opts.graceMs;
  let signal = opts.signal;
  const signalled = new Set<number>();
  let groupDue = true;
  for (;;) {
    const pids = jobProcesses(rec);
    // what refused our signal will not die of it: no use waiting
    if (pids.length === 0 || pids.every((p) => denied.has(p))) return { remaining: pids, denied };
    if (groupDue && leadsGroup(rec)) send(-rec.pid!, signal, denied);
    groupDue = false;
    for (const pid of pids) {
      if (!signalled.has(pid)) send(pid, signal, denied);
      signalled.add(pid);
    }
    continueStopped(pids, signal, denied);
    if (signal !== 9 && Date.now() >= deadline) {
      signal = 9;
      signalled.clear();
      groupDue = true;
      continue;
    }
    if (signal === 9 && Date.now() >= deadline + AFTER_KILL_MS) return { remaining: jobProcesses(rec), denied };
    await sleep(POLL_MS);
  }
}

function stopQueued(home: Home, name: string): Promise<JobRecord | null> {
  return withLock(home, name, () => {
    const rec = readRecord(home, name);
    if (rec?.status !== 'QUEUED') return null;
    // its queue's hand-off started it first: it is stopped as a running job
    if (preempt(home, rec) === 'started') return null;
    dropPrepared(home, rec);
    const stopped = writeEndedRecord(home, { ...rec, status: 'STOPPED', ended_at: nowIso() });
    removeQueueEntry(home, name);
    return stopped;
  });
}

/** Rewrites this run's record as STOPPED when `still` holds under the name's lock; best effort. */
async function relabelStopped(
  home: Home,
  rec: JobRecord,
  still: (r: JobRecord) => boolean,
  endedAt: string | null,
): Promise<JobRecord | null> {
  try {
    return await withLock(home, rec.name, () => {
      const fresh = readRecord(home, rec.name);
      if (!fresh || fresh.id !== rec.id || !still(fresh)) return null;
      // a hook already started for the outcome the fold saw does not run again
      return writeEndedRecord(home, { ...fresh, status: 'STOPPED', ended_at: fresh.ended_at ?? endedAt });
    });
  } catch {
    return null; // no room even for the lock (full disk), or a corrupt record: it keeps what was recorded
  }
}

function readRecordQuietly(home: Home, name: string): JobRecord | null {
  try {
    return readRecord(home, name);
  } catch {
    return null;
  }
}

/**
 * The record once the job's end is known. `ended`: the leader ended after our signals, so the
 * run is STOPPED whoever records it: the supervisor (which sees our marker), or we ourselves when
 * it could not see the marker (no room for it on a full disk) or is gone (nobody else will).
 */
async function finalRecord(home: Home, rec: JobRecord, ended: boolean): Promise<JobRecord> {
  const deadline = Date.now() + FOLD_WAIT_MS;
  for (;;) {
    // Check the supervisor first: if it is gone, the read below sees everything it wrote.
    const supervisorAlive = isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id);
    await foldEnd(home, rec.name, rec.id); // the end file, once the supervisor has written it
    const disk = readRecordQuietly(home, rec.name);
    if (!disk || disk.id !== rec.id) return disk ? currentState(home, disk) : currentState(home, rec);
    if (disk.status !== 'RUNNING') {
      const relabelled =
        ended && disk.status !== 'STOPPED'
          ? await relabelStopped(home, rec, (r) => r.status === disk.status, null)
          : null;
      clearStop(home, rec);
      return relabelled ?? disk;
    }
    if (!ended || (supervisorAlive && Date.now() > deadline)) return currentState(home, disk);
    if (!supervisorAlive) {
      const gone = (r: JobRecord) => r.status === 'RUNNING' && !isSameProcess(r.sup_pid, r.sup_starttime, r.boot_id);
      const relabelled = await relabelStopped(home, rec, gone, nowIso());
      if (relabelled) clearStop(home, rec);
      return relabelled ?? currentState(home, readRecordQuietly(home, rec.name) ?? disk);
    }
    await sleep(POLL_MS);
  }
}

const pidList = (pids: Iterable<number>) => [...pids].sort((a, b) => a - b).join(', ');

function outcomeProblem(rec: JobRecord, ended: boolean, out: Outcome): string | null {
  if (ended && out.remaining.length === 0) return null;
  const refused = out.remaining.filter((p) => out.denied.has(p));
  const alive = out.remaining.length > 0 ? out.remaining : [rec.pid!];
  const why =
    refused.length > 0
      ? `kill() of pid ${pidList(refused)} was refused (EPERM: operation not permitted)`
      : `pid ${pidList(alive)} still alive ${AFTER_KILL_MS / 1000}s after SIGKILL`;
  return ended
    ? `job ${rec.name} ended, but part of it is still running: ${why}`
    : `job ${rec.name} did not end: ${why}`;
}

interface Active {
  rec: JobRecord;
  claim: StopClaim;
}

/**
 * A retried job waiting for its next attempt has no process to signal: its supervisor's wait is
 * ended (retry.ts) and, seeing our marker, it records the outcome (STOPPED) and retries no more.
 * An attempt that starts meanwhile is stopped as any running job.
 */
async function stopBetweenAttempts(
  home: Home,
  rec: JobRecord,
  opts: StopOptions,
  active: Set<Active>,
): Promise<[JobRecord, string | null]> {
  const entry: Active = { rec, claim: claimStop(home, rec) };
  active.add(entry);
  let ended = false;
  try {
    const deadline = Date.now() + FOLD_WAIT_MS;
    for (;;) {
      const disk = readRecordQuietly(home, rec.name);
      const cur = disk && disk.id === rec.id ? currentState(home, disk) : rec;
      if (!isBetweenAttempts(cur) && !isTerminal(cur.status)) {
        active.delete(entry); // the attempt's stop takes over this claim
        return await stopRunning(home, cur, opts, active);
      }
      ended = isTerminal(cur.status) || disk?.id !== rec.id;
      if (ended || Date.now() > deadline) break;
      if (isRetrySupervisor(home, cur)) endRetryWait(cur);
      await sleep(POLL_MS);
    }
  } finally {
    if (active.has(entry)) (ended ? confirmStop : withdrawStop)(entry.claim);
    active.delete(entry);
  }
  const problem = ended
    ? null
    : isRetrySupervisor(home, rec)
      ? `job ${rec.name} did not end: its supervisor (pid ${rec.sup_pid}) did not record an outcome`
      : `job ${rec.name}: pid ${rec.sup_pid} is not this run's supervisor; nothing signalled`;
  return [await finalRecord(home, rec, ended), problem];
}

/** Signals one RUNNING job and everything it started, escalating to SIGKILL after the grace. */
async function stopRunning(
  home: Home,
  rec: JobRecord,
  opts: StopOptions,
  active: Set<Active>,
): Promise<[JobRecord, string | null]> {
  if (isBetweenAttempts(rec)) return stopBetweenAttempts(home, rec, opts, active);
  const problem = await settledLeaderProblem(home, rec);
  // ended since it was found running (a queue's job may end any moment): that changes nothing
  if (problem && isTerminal(currentState(home, rec).status)) return [await finalRecord(home, rec, false), null];
  if (problem) return [rec, `job ${rec.name}: ${problem}; nothing signalled`];
  const entry: Active = { rec, claim: claimStop(home, rec) };
  active.add(entry);
  let out: Outcome;
  let ended: boolean;
  try {
    out = await signalUntilGone(rec, opts);
  } finally {
    ended = !isSameProcess(rec.pid, rec.starttime, rec.boot_id);
    // A stop that did not end the job must not label its later end.
    if (ended) confirmStop(entry.claim);
    else withdrawStop(entry.claim);
    active.delete(entry);
  }
  return [await finalRecord(home, rec, ended), outcomeProblem(rec, ended, out)];
}

/** Ctrl-C, TERM or HUP on a stop: leave behind only what is true, then exit 128+n. */
function onInterrupt(active: Set<Active>): () => void {
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => {
    const handler = () => {
      const left: string[] = [];
      for (const { rec, claim } of active) {
        if (isSameProcess(rec.pid, rec.starttime, rec.boot_id)) {
          withdrawStop(claim);
          left.push(rec.name);
        } else confirmStop(claim);
      }
      const note = left.length > 0 ? `; not stopped, and no stop recorded: ${left.join(', ')}` : '';
      process.stderr.write(`${basename(process.argv[1] ?? 'bgmon-stop')}: interrupted by ${sig}${note}\n`);
      process.exit(128 + constants.signals[sig]);
    };
    process.on(sig, handler);
    return [sig, handler] as const;
  });
  return () => handlers.forEach(([sig, handler]) => process.removeListener(sig, handler));
}

const isErrno = (err: unknown): err is NodeJS.ErrnoException =>
  err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string';

async function stopOne(
  home: Home,
  name: string,
  opts: StopOptions,
  active: Set<Active>,
  queuedLooks = 0,
): Promise<[JobRecord | null, string | null]> {
  const rec = readRecord(home, name);
  if (!rec) return [null, null];
  const cur = currentState(home, rec);
  if (cur.status === 'STALE') {
    return [
      cur,
      `job ${name} is STALE: pid ${rec.pid} now belongs to another process (start time or boot id differ); nothing ` +
        `signalled`,
    ];
  }
  try {
    if (cur.status === 'QUEUED') {
      // its queue's hand-off is starting it but its job's shell has not said so for a while
      // (paused mid-way): neither stoppable as queued nor yet as running; said, not looped on
      if (queuedLooks >= MAX_QUEUED_LOOKS) return [cur, `job ${name} is being started by its queue; try again`];
      const stopped = await stopQueued(home, name);
      // it left the queue meanwhile (started, or cancelled): stop it as it is now
      return stopped ? [stopped, null] : await stopOne(home, name, opts, active, queuedLooks + 1);
    }
    if (isTerminal(cur.status)) return [cur, null];
    return await stopRunning(home, cur, opts, active);
  } catch (err) {
    // ENOSPC, EROFS, EACCES...: say what could not be done, as a reason, not a crash
    if (!isErrno(err)) throw err;
    return [currentState(home, readRecordQuietly(home, name) ?? cur), `job ${name}: ${err.message}`];
  }
}

const MAX_QUEUED_LOOKS = 2;

export async function stopJobs(home: Home, names: string[], opts: StopOptions): Promise<ActionResult> {
  const active = new Set<Active>();
  const restore = onInterrupt(active);
  try {
    return gathered(await Promise.all(names.map((name) => stopOne(home, name, opts, active))));
  } finally {
    restore();
  }
}
