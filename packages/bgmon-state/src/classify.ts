import { wasStopped } from './stop-marker';
import { bootId, isSameProcess, readStat, signalName } from './proc';
import { readRecord, type JobRecord } from './record';
import { type Home } from './paths';
import { sleepSync } from './sleep';
import { queuedState } from './queue';

// How long a status read waits for a live supervisor to record an end it has just reaped.
const SUPERVISOR_WRITE_MS = 1000;

/**
 * The job as it stands now: the record plus /proc. Folded ends are trusted; a record
 * that says RUNNING is always checked against the process it names.
 */
export function currentState(home: Home, rec: JobRecord): JobRecord {
  if (rec.status === 'QUEUED') return queuedState(home, rec);
  if (rec.status !== 'RUNNING') return rec;
  if (rec.boot_id !== bootId() || rec.pid === null) return { ...rec, status: rec.pid !== null && readStat(rec.pid) ? 'STALE' : 'DEAD' };
  const st = readStat(rec.pid);
  if (st && st.starttime !== rec.starttime) return { ...rec, status: 'STALE' };
  if (st && st.state !== 'Z') return rec;
  // A zombie's wait status is what its supervisor is about to record; with the supervisor
  // gone nobody records it, and once reaped it is lost: DEAD either way, consistently.
  if (st) return isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id) ? endedFromWaitStatus(home, rec, st.exitStatus) : { ...rec, status: 'DEAD' };
  return recordedEnd(home, rec);
}

/** A zombie job has ended but is not yet reaped: its wait status is in /proc. */
function endedFromWaitStatus(home: Home, rec: JobRecord, status: number): JobRecord {
  const sig = status & 0x7f;
  const code = sig === 0 ? (status >> 8) & 0xff : null;
  const signal = sig === 0 ? null : signalName(sig);
  const ended = { ...rec, exit_code: code, signal };
  if (wasStopped(home, rec)) return { ...ended, status: 'STOPPED' };
  return { ...ended, status: code === 0 ? 'SUCCEEDED' : 'FAILED' };
}

/** The process is gone: its supervisor has recorded the end, is about to, or died with it (DEAD). */
function recordedEnd(home: Home, rec: JobRecord): JobRecord {
  const deadline = Date.now() + SUPERVISOR_WRITE_MS;
  for (;;) {
    // Check the supervisor first: if it is gone, the re-read below sees everything it wrote.
    const supervisorAlive = isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id);
    let fresh: JobRecord | null;
    try {
      fresh = readRecord(home, rec.name);
    } catch {
      fresh = null;
    }
    if (fresh && fresh.id !== rec.id) return currentState(home, fresh);
    if (fresh && fresh.status !== 'RUNNING') return fresh;
    if (!supervisorAlive || Date.now() > deadline) return { ...rec, status: 'DEAD' };
    sleepSync(5);
  }
}
