import { constants } from 'node:os';
import type { Home } from './paths';
import { maskHas, readStat, signalMasks, signalName } from './proc';
import { gathered, isTerminal, readRecord, type ActionResult, type JobRecord } from './record';
import { currentState } from './classify';
import { STOP_SIGNALS } from './run-state';
import { jobProcesses, killGuarded, leadsOwnGroup, settledLeaderProblem } from './stop';
import { sleep } from './sleep';

const POLL_MS = 10;
// SIGSTOP takes effect when the kernel next schedules the process: on a loaded machine, a while.
const SETTLE_MS = 10_000;
const { SIGSTOP, SIGCONT } = constants.signals;

type Disposition = 'default' | 'ignored' | 'caught';

/** What the process does with `signal`, from the SigIgn and SigCgt masks in /proc/<pid>/status. */
function disposition(pid: number, signal: number): Disposition | null {
  const masks = signalMasks(pid);
  if (!masks) return null;
  return maskHas(masks, 'SigIgn', signal) ? 'ignored' : maskHas(masks, 'SigCgt', signal) ? 'caught' : 'default';
}

/**
 * The signal to send to one process. A job leads a process group with no parent in its session
 * (an orphaned group), and the kernel discards TSTP, TTIN and TTOU sent to such a group when
 * their action is the default (stop): there SIGSTOP does what the default would have done.
 */
function signalFor(pid: number, signal: number): number {
  if (signal === SIGSTOP || !STOP_SIGNALS.has(signal)) return signal;
  return disposition(pid, signal) === 'default' ? SIGSTOP : signal;
}

/** False when kill() would refuse to signal pid (EPERM); a group kill() skips such members silently. */
function mayKill(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'EPERM';
  }
}

/**
 * Sends the signal once to the job's group and once to each of its processes outside the group
 * (children that called setsid or daemonized), exactly the processes bgmon-stop would signal.
 * Returns the pids that could not be signalled (EPERM).
 */
function signalJob(rec: JobRecord, signal: number): Set<number> {
  const denied = new Set<number>();
  const grouped = leadsOwnGroup(rec) && (killGuarded(-rec.pid!, signal, denied), denied.size === 0);
  for (const pid of jobProcesses(rec)) {
    const own = signalFor(pid, signal);
    const inGroup = grouped && readStat(pid)?.pgrp === rec.pid;
    // a member of the group already has the signal (once: HUP must not reload twice), unless
    // it was not permitted, or it is a stop the kernel discarded
    if (inGroup && !mayKill(pid)) denied.add(pid);
    else if (!inGroup || own !== signal) killGuarded(pid, own, denied);
  }
  return denied;
}

/** Waits (briefly) until the leader shows the effect of a stop or a continue, then reads the job. */
async function settledState(home: Home, rec: JobRecord, signal: number): Promise<JobRecord> {
  const wantStopped = STOP_SIGNALS.has(signal) ? true : signal === SIGCONT ? false : null;
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    const fresh = readRecord(home, rec.name);
    const cur = fresh ? currentState(home, fresh) : rec;
    if (wantStopped === null || cur.id !== rec.id || isTerminal(cur.status)) return cur;
    // a job that catches or ignores TSTP may never stop: that is its choice, and the truth
    if ((cur.status === 'PAUSED') === wantStopped || Date.now() > deadline) return cur;
    await sleep(POLL_MS);
  }
}

const ENDED_NOTE = 'a job that has ended cannot be signalled';

async function signalOne(home: Home, name: string, signal: number): Promise<[JobRecord | null, string | null]> {
  const rec = readRecord(home, name);
  if (!rec) return [null, null];
  const cur = currentState(home, rec);
  const sig = signalName(signal);
  if (cur.status === 'STALE') {
    const why = `pid ${rec.pid} now belongs to another process (start time or boot id differ)`;
    return [cur, `job ${name} is STALE: ${why}; nothing signalled`];
  }
  if (cur.status === 'QUEUED') return [cur, `job ${name} is QUEUED: it has no process yet; nothing signalled`];
  if (isTerminal(cur.status)) return [cur, `job ${name} is ${cur.status}: ${ENDED_NOTE}; ${sig} not sent`];
  const problem = await settledLeaderProblem(home, cur);
  if (problem) return [cur, `job ${name}: ${problem}; nothing signalled`];
  const denied = signalJob(cur, signal);
  const after = await settledState(home, cur, signal);
  if (denied.size === 0) return [after, null];
  const pids = [...denied].sort((a, b) => a - b).join(', ');
  return [after, `job ${name}: kill() of pid ${pids} with ${sig} was refused (EPERM: operation not permitted)`];
}

/**
 * Sends a signal to each job's whole process tree (as bgmon-stop reaches it) without ending or
 * relabelling it: STOP/TSTP make it PAUSED, CONT makes it RUNNING again. Records are the jobs'
 * states once the signal has taken effect.
 */
export async function signalJobs(home: Home, names: string[], signal: number): Promise<ActionResult> {
  return gathered(await Promise.all(names.map((name) => signalOne(home, name, signal))));
}
