import { writeFileSync } from 'node:fs';
import { stopMarkerPath, type Home } from './paths';
import { environHas, isSameProcess, listPids, readStat } from './proc';
import { isTerminal, nowIso, readRecord, writeRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { removeQueueEntry } from './queue';
import { sleep } from './sleep';

export interface StopOptions {
  signal: number;
  graceMs: number;
}

export interface StopResult {
  records: JobRecord[];
  /** one line per job that was not signalled, with the reason */
  refusals: string[];
}

const POLL_MS = 20;
// After SIGKILL the kernel needs a moment; a process that outlives this is stuck in D state.
const AFTER_KILL_MS = 5000;

/**
 * Every live process that is provably this run's: in its process group or session, or
 * carrying its BGMON_JOB_ID marker (children that called setsid or daemonized), and never
 * older than the job itself. The supervisor is not the job and is left to record the end.
 */
export function jobProcesses(rec: JobRecord): number[] {
  const marker = `BGMON_JOB_ID=${rec.id}`;
  const found: number[] = [];
  for (const pid of listPids()) {
    if (pid === rec.sup_pid || pid === process.pid) continue;
    const st = readStat(pid);
    if (!st || st.state === 'Z' || rec.starttime === null || st.starttime < rec.starttime) continue;
    if (st.pgrp === rec.pid || st.session === rec.pid || environHas(pid, marker)) found.push(pid);
  }
  return found;
}

function signalAll(rec: JobRecord, pids: number[], signal: number, leaderVerified: boolean): void {
  if (leaderVerified) {
    try {
      process.kill(-rec.pid!, signal);
    } catch {}
  }
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {}
  }
}

async function stopQueued(home: Home, name: string): Promise<JobRecord | null> {
  const held = await lock(home, name);
  try {
    const rec = readRecord(home, name);
    if (!rec || rec.status !== 'QUEUED') return null;
    const stopped: JobRecord = { ...rec, status: 'STOPPED', ended_at: nowIso() };
    writeRecord(home, stopped);
    removeQueueEntry(home, name);
    return stopped;
  } finally {
    unlock(held);
  }
}

/** Signals one RUNNING job and everything it started, escalating to SIGKILL after the grace. */
async function stopRunning(home: Home, rec: JobRecord, opts: StopOptions): Promise<JobRecord> {
  writeFileSync(stopMarkerPath(home, rec.name), rec.id + '\n', { mode: 0o600 });
  const deadline = Date.now() + opts.graceMs;
  let signal = opts.signal;
  const signalled = new Set<number>();
  let leader = isSameProcess(rec.pid, rec.starttime, rec.boot_id);
  for (;;) {
    const pids = jobProcesses(rec);
    if (pids.length === 0) break;
    const fresh = pids.filter((p) => !signalled.has(p));
    if (fresh.length > 0 || leader) signalAll(rec, fresh, signal, leader);
    fresh.forEach((p) => signalled.add(p));
    leader = false;
    if (signal !== 9 && Date.now() >= deadline) {
      signal = 9;
      signalled.clear();
      leader = isSameProcess(rec.pid, rec.starttime, rec.boot_id);
      continue;
    }
    if (signal === 9 && Date.now() >= deadline + AFTER_KILL_MS) break;
    await sleep(POLL_MS);
  }
  const after = currentState(home, readRecord(home, rec.name) ?? rec);
  if (after.id === rec.id && after.status === 'DEAD') {
    // The supervisor was gone (killed earlier): nobody else will record that we stopped it.
    const stopped: JobRecord = { ...after, status: 'STOPPED', ended_at: nowIso() };
    writeRecord(home, stopped);
    return stopped;
  }
  return after;
}

export async function stopJobs(home: Home, names: string[], opts: StopOptions): Promise<StopResult> {
  const refusals: string[] = [];
  const work = names.map(async (name): Promise<JobRecord | null> => {
    const rec = readRecord(home, name);
    if (!rec) return null;
    const cur = currentState(home, rec);
    if (cur.status === 'STALE') {
      refusals.push(`job ${name} is STALE: pid ${rec.pid} now belongs to another process (start time or boot id differ); nothing signalled`);
      return cur;
    }
    if (cur.status === 'QUEUED') return (await stopQueued(home, name)) ?? currentState(home, readRecord(home, name) ?? cur);
    if (isTerminal(cur.status)) return cur;
    return stopRunning(home, cur, opts);
  });
  const records = (await Promise.all(work)).filter((r): r is JobRecord => r !== null);
  return { records, refusals };
}

