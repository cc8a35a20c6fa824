import { constants } from 'node:os';
import { wasStopped } from './stop-marker';
import { bootId, isSameProcess, readStat } from './proc';
import { nowIso, type JobRecord } from './record';
import { endedRecord, readEnd } from './end';
import type { Home } from './paths';
import { sleepSync } from './sleep';
import { queuedState } from './queue';

// How long a status read waits for a live supervisor to record an end it has just reaped.
const SUPERVISOR_WRITE_MS = 1000;

/**
 * The job as it stands now: the record plus its end file plus /proc. Folded ends are trusted; a
 * record that says RUNNING is checked against the process it names, and an end the supervisor
 * wrote wins over anything /proc says later (a reused pid, a reboot).
 */
export function currentState(home: Home, rec: JobRecord): JobRecord {
  if (rec.status === 'QUEUED') return queuedState(home, rec);
  // Records are written RUNNING, never PAUSED; a PAUSED one (hand-made) is checked the same way.
  if (rec.status !== 'RUNNING' && rec.status !== 'PAUSED') return rec;
  if (isSameProcess(rec.pid, rec.starttime, rec.boot_id)) {
    const paused = isStoppedState(readStat(rec.pid!)?.state);
    return paused === (rec.status === 'PAUSED') ? rec : { ...rec, status: paused ? 'PAUSED' : 'RUNNING' };
  }
  const end = readEnd(home, rec.name, rec.id);
  if (end) return endedRecord(rec, end, wasStopped(home, rec));
  if (rec.boot_id !== bootId() || rec.pid === null) return { ...rec, status: rec.pid !== null && readStat(rec.pid) ? 'STALE' : 'DEAD' };
  const st = readStat(rec.pid);
  if (st && st.starttime !== rec.starttime) return { ...rec, status: 'STALE' };
  // A zombie's wait status is what its supervisor is about to record; with the supervisor
  // gone nobody records it, and once reaped it is lost: DEAD either way, consistently.
  if (st) return isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id) ? endedFromWaitStatus(home, rec, st.exitStatus) : { ...rec, status: 'DEAD' };
  return awaitedEnd(home, rec);
}

/** T: stopped by a signal (SIGSTOP, SIGTSTP...); t: stopped by a tracer. Either way it does not run. */
export const isStoppedState = (state: string | undefined) => state === 'T' || state === 't';

/** The signals whose default action stops a process: after them a job reads PAUSED. */
export const STOP_SIGNALS: ReadonlySet<number> = new Set([
  constants.signals.SIGSTOP, constants.signals.SIGTSTP, constants.signals.SIGTTIN, constants.signals.SIGTTOU,
]);

/** A zombie job has ended but is not yet reaped: its wait status is in /proc. */
function endedFromWaitStatus(home: Home, rec: JobRecord, status: number): JobRecord {
  const sig = status & 0x7f;
  const shellStatus = sig === 0 ? (status >> 8) & 0xff : 128 + sig;
  return endedRecord(rec, { status: shellStatus, endedAt: nowIso() }, wasStopped(home, rec));
}

/** The process is gone: its supervisor is about to write the end, or died with it (DEAD). */
function awaitedEnd(home: Home, rec: JobRecord): JobRecord {
  const deadline = Date.now() + SUPERVISOR_WRITE_MS;
  for (;;) {
    // Check the supervisor first: if it is gone, the read below sees everything it wrote.
    const supervisorAlive = isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id);
    const end = readEnd(home, rec.name, rec.id);
    if (end) return endedRecord(rec, end, wasStopped(home, rec));
    if (!supervisorAlive || Date.now() > deadline) return { ...rec, status: 'DEAD' };
    sleepSync(5);
  }
}
