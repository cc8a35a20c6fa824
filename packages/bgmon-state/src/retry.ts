import { UsageError } from './errors';
import { parseDuration } from './duration';
import type { AttemptEnd, EndFile } from './end';
import { bootId, environHas, isSameProcess, listPids, parseSignal, readStat, signalName, type ProcStat } from './proc';
import type { AttemptRecord, JobRecord, RetrySettings } from './record';

/*
 * --retry: one supervisor runs every attempt (supervisor.sh). Node turns the settings into plain
 * numbers for it, and reads its end file back into the record: which attempt runs (its pid once
 * verified in /proc), when the next one starts while it waits, and how each attempt ended.
 */

export const MAX_RETRIES = 1000;
const DEFAULT_DELAY = '1s';
const DEFAULT_MAX_DELAY = '1h';

export interface RetryFlags {
  retry?: string;
  delay?: string;
  maxDelay?: string;
  on?: string;
}

/** The settings --retry, --retry-delay, --retry-max-delay and --retry-on give; null without --retry. */
export function retrySettings(flags: RetryFlags): RetrySettings | null {
  if (flags.retry === undefined) {
    const given = { '--retry-delay': flags.delay, '--retry-max-delay': flags.maxDelay, '--retry-on': flags.on };
    const stray = Object.entries(given).find(([, value]) => value !== undefined);
    if (stray) throw new UsageError(`${stray[0]} needs --retry N`);
    return null;
  }
  const count = /^\d{1,4}$/.test(flags.retry) ? Number(flags.retry) : NaN;
  if (!(count <= MAX_RETRIES)) {
    throw new UsageError(
      `--retry ${JSON.stringify(flags.retry)}: expected a whole number of extra attempts, 0 to ${MAX_RETRIES}`,
    );
  }
  const delay = parseDuration(flags.delay ?? DEFAULT_DELAY, '--retry-delay');
  const maxDelay = parseDuration(flags.maxDelay ?? DEFAULT_MAX_DELAY, '--retry-max-delay');
  const on = flags.on === undefined ? null : parseRetryOn(flags.on);
  return count === 0 ? null : { count, delay_ms: Math.min(delay, maxDelay), max_delay_ms: maxDelay, on };
}

/** "1,2,SIGKILL": exit codes 1 to 255 and signal names or numbers, as given; "SIGKILL" style kept. */
function parseRetryOn(list: string): string[] {
  const out = new Set<string>();
  for (const raw of list.split(',')) {
    const word = raw.trim();
    if (/^\d{1,3}$/.test(word) && Number(word) >= 1 && Number(word) <= 255) {
      out.add(String(Number(word)));
      continue;
    }
    const sig = /^\d+$/.test(word) ? null : parseSignal(word);
    if (sig === null) {
      throw new UsageError(
        `--retry-on ${JSON.stringify(word)}: expected an exit code 1-255 or a signal name (e.g. 1,2,SIGKILL)`,
      );
    }
    out.add(signalName(sig));
  }
  return [...out];
}

/** The supervisor's TRIES DELAY_MS MAX_DELAY_MS RETRY_ON arguments for this run. */
export function supervisorRetryArgs(rec: Pick<JobRecord, 'retry'>): string[] {
  const r = rec.retry;
  if (!r) return ['1', '0', '0', 'any'];
  const statuses = r.on === null ? 'any' : ` ${r.on.map(waitStatus).join(' ')} `;
  return [String(r.count + 1), String(r.delay_ms), String(r.max_delay_ms), statuses];
}

/** As sh's wait reports it: an exit code as is, signal n as 128+n. */
const waitStatus = (word: string) => (/^\d+$/.test(word) ? Number(word) : 128 + (parseSignal(word) ?? 0));

export const attemptsOf = (rec: JobRecord) => (rec.retry ? rec.retry.count + 1 : 1);

function attemptRecord(a: AttemptEnd): AttemptRecord {
  const bySignal = a.status > 128 && a.status <= 192;
  return {
    attempt: a.attempt,
    exit_code: bySignal ? null : a.status,
    signal: bySignal ? signalName(a.status - 128) : null,
    ended_at: a.endedAt,
  };
}

/**
 * The run as its end file says it stands: the attempts so far, the attempt now running (its
 * pid and starttime once /proc shows it is the supervisor's child leading its own session), or,
 * while the supervisor waits, when the next attempt starts.
 */
/**
 * A pid the supervisor reported as an attempt, trusted when it leads its own session and is the
 * live supervisor's child, or, once the supervisor is gone (killed), when it carries this run's
 * marker and started after the supervisor: an attempt that outlives its supervisor is still the
 * job's, to be shown RUNNING and stopped, never lost.
 */
function isAttemptOf(rec: JobRecord, pid: number, st: ProcStat): boolean {
  if (st.state === 'Z' || st.session !== pid || st.pgrp !== pid || rec.boot_id !== bootId()) return false;
  if (st.ppid === rec.sup_pid && isSameProcess(rec.sup_pid, rec.sup_starttime, rec.boot_id)) return true;
  const after = rec.sup_starttime !== null && st.starttime >= rec.sup_starttime;
  return after && environHas(pid, `BGMON_JOB_ID=${rec.id}`);
}

export function currentAttempt(rec: JobRecord, file: EndFile): JobRecord {
  const last = file.attempts[file.attempts.length - 1];
  const cur: JobRecord = {
    ...rec,
    attempts: file.attempts.map(attemptRecord),
    next_attempt_at: null,
    attempt: last ? last.attempt + (last.delayMs === null ? 0 : 1) : 1,
  };
  if (file.end && file.lastPid !== null && file.lastPid !== rec.pid) {
    // the last attempt ended unseen: its pid is known, its starttime is not
    return { ...cur, pid: file.lastPid, starttime: null };
  }
  if (file.pid !== null) {
    const st = readStat(file.pid);
    if (st && isAttemptOf(rec, file.pid, st)) return { ...cur, pid: file.pid, starttime: st.starttime };
  } else if (last && last.delayMs !== null) {
    cur.next_attempt_at = new Date(Date.parse(last.endedAt) + last.delayMs).toISOString();
  }
  return cur;
}

/**
 * Ends a wait between attempts: signals what the supervisor has forked besides a running
 * attempt (its `sleep`, or an attempt not yet in its own session). The supervisor then finds the
 * stop marker and records the outcome. Best effort, never throws.
 */
export function endRetryWait(rec: JobRecord): void {
  const sup = rec.sup_pid;
  if (!sup || sup <= 1 || !isSameProcess(sup, rec.sup_starttime, rec.boot_id)) return;
  for (const pid of listPids()) {
    const st = readStat(pid);
    if (!st || st.ppid !== sup || st.session === pid || pid === process.pid) continue;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {}
  }
}

/** Waiting between attempts (or about to fork the next one): no job process to signal. */
export const isBetweenAttempts = (rec: JobRecord) =>
  rec.retry != null && !isSameProcess(rec.pid, rec.starttime, rec.boot_id);
