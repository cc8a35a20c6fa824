import { constants } from 'node:os';
import { wasStopped } from './stop-marker';
import { bootId, isPaused, isSameProcess, readStat } from './proc';
import { nowIso, readRecord, type JobRecord } from './record';
import { readRun } from './history';
import { endedRecord, readEnd, readEndFile } from './end';
import { currentAttempt } from './retry';
import type { Home } from './paths';
import { sleepSync } from './sleep';

// How long a read waits for a live supervisor to write an end it has just reaped: its next step
// is one printf, but a loaded machine can take seconds to schedule it. Past this, or when the
// supervisor itself is stopped, the run is reported DEAD rather than block the reader.
const SUPERVISOR_WRITE_MS = 10_000;

/**
 * A run that has left the queue, as it stands now: the record plus its end file plus /proc.
 * Folded ends are trusted; a record that says RUNNING is checked against the process it names,
 * and an end the supervisor wrote wins over anything /proc says later (a reused pid, a reboot).
 */
export function runState(home: Home, rec: JobRecord): JobRecord {
  // Records are written RUNNING, never PAUSED; a PAUSED one (hand-made) is checked the same way.
  if (rec.status !== 'RUNNING' && rec.status !== 'PAUSED') return rec;
  if (isSameProcess(rec.pid, rec.starttime, rec.boot_id)) return runningOrPaused(rec);
  if (rec.retry) return retriedRunState(home, rec);
  const ended = recordedEnd(home, rec);
  if (ended) return ended;
  if (rec.boot_id !== bootId() || rec.pid === null)
    return rec.pid !== null && readStat(rec.pid) ? { ...rec, status: 'STALE' } : dead(rec);
  const st = readStat(rec.pid);
  if (st && st.starttime !== rec.starttime) return { ...rec, status: 'STALE' };
  // A zombie's wait status is what its supervisor is about to record; with the supervisor
  // gone nobody records it, and once reaped it is lost: DEAD either way, consistently.
  if (st)
    return isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id)
      ? endedFromWaitStatus(home, rec, st.exitStatus)
      : dead(rec);
  return awaitedEnd(home, rec);
}

/** Why a run is DEAD: nothing recorded its end. */
export const DEAD_REASON = 'process gone, no exit recorded (supervisor killed, OOM or reboot)';
const dead = (rec: JobRecord): JobRecord => ({ ...rec, status: 'DEAD', reason: rec.reason ?? DEAD_REASON });

function runningOrPaused(rec: JobRecord): JobRecord {
  const paused = isPaused(rec.pid!);
  return paused === (rec.status === 'PAUSED') ? rec : { ...rec, status: paused ? 'PAUSED' : 'RUNNING' };
}

/**
 * A retried run whose recorded attempt is not running: its end file says what came next (an
 * attempt's end and the wait for the next, a new attempt, the outcome). Between an attempt's end
 * and the supervisor's next line the file is read again, as for a run's end; with the
 * supervisor gone and no outcome recorded the run is DEAD: no outcome is ever guessed from a
 * zombie's status, since the supervisor may have retried it.
 */
function retriedRunState(home: Home, rec: JobRecord): JobRecord {
  const deadline = Date.now() + SUPERVISOR_WRITE_MS;
  for (;;) {
    const supervisorAlive = isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id);
    const file = readEndFile(home, rec.name, rec.id);
    if (!file) {
      const folded = recordedEnd(home, rec);
      if (folded) return folded;
    }
    const cur = file ? currentAttempt(rec, file) : rec;
    if (file?.end) return endedRecord(cur, file.end, wasStopped(home, rec));
    if (cur.next_attempt_at) return supervisorAlive ? { ...cur, status: 'RUNNING' } : dead(cur);
    if (isSameProcess(cur.pid, cur.starttime, cur.boot_id)) return runningOrPaused(cur);
    // a stopped supervisor has not decided (another attempt may follow): still its run, not DEAD
    if (supervisorAlive && isPaused(rec.sup_pid!)) return { ...cur, status: 'RUNNING' };
    if (!supervisorAlive || Date.now() > deadline) return dead(cur);
    sleepSync(5);
  }
}

/** The signals whose default action stops a process: after them a job reads PAUSED. */
export const STOP_SIGNALS: ReadonlySet<number> = new Set([
  constants.signals.SIGSTOP,
  constants.signals.SIGTSTP,
  constants.signals.SIGTTIN,
  constants.signals.SIGTTOU,
]);

/**
 * The run's recorded end: from its end file, or, when someone has folded it since `rec` was read
 * (the fold writes the record, then removes the end file), from the record or its history.
 */
function recordedEnd(home: Home, rec: JobRecord): JobRecord | null {
  const end = readEnd(home, rec.name, rec.id);
  if (end) return endedRecord(rec, end, wasStopped(home, rec));
  let disk: JobRecord | null = null;
  try {
    disk = readRecord(home, rec.name);
  } catch {}
  const folded = disk && disk.id === rec.id ? disk : readRun(home, rec.name, rec.id);
  return folded && folded.status !== 'RUNNING' ? folded : null;
}

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
    const ended = recordedEnd(home, rec);
    if (ended) return ended;
    const supervisorStopped = supervisorAlive && isPaused(rec.sup_pid!);
    if (!supervisorAlive || supervisorStopped || Date.now() > deadline) return dead(rec);
    sleepSync(5);
  }
}
