import { resolve } from 'node:path';
import { parseDuration } from './duration';
import { UsageError } from './errors';
import type { Home } from './paths';

/*
 * Starting later (--in DUR, --at TIME): the run is QUEUED with `not_before` in its record, and
 * one small sleeper per distinct start time (`sh -c 'sleep N; exec node ENTRY --advance-queue'`,
 * about 1 MB, carrying no job marker) advances the queue when the time comes. If the sleeper is
 * killed (or the machine sleeps through it), bgmon-status and bgmon-wait start a due job too.
 */

const MAX_DELAY_MS = 366 * 86_400_000;
// A time this far in the past is a mistake (a wrong date), not "now".
const PAST_SLACK_MS = 60_000;

/** "HH:MM" or "HH:MM:SS": today at that local time, or tomorrow when it has passed. */
function clockTime(text: string, now: Date): Date | null {
  const m = /^([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/.exec(text);
  if (!m) return null;
  const at = new Date(now);
  at.setHours(Number(m[1]), Number(m[2]), Number(m[3] ?? 0), 0);
  if (at.getTime() <= now.getTime()) at.setDate(at.getDate() + 1);
  return at;
}

// ISO 8601 with a date and a time: 2030-01-02T03:04[:05[.678]][Z|+01:00] (a space for the T too).
const ISO = /^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$/;

/** An ISO time whose fields all exist: Date would move Feb 30 to March 2 and 24:00 to the next day. */
function isoTime(text: string): Date | null {
  const m = ISO.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map((f) => Number(f ?? 0));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) return null;
  return new Date(text.replace(' ', 'T'));
}

/** --at TIME as a date: ISO 8601 (local time without a zone) or HH:MM today/tomorrow. */
export function parseAt(text: unknown, flag = '--at', now = new Date()): Date {
  const given = typeof text === 'string' ? text.trim() : '';
  const at = clockTime(given, now) ?? isoTime(given);
  const bad = `${flag} ${JSON.stringify(text)}`;
  if (!at || !Number.isFinite(at.getTime())) {
    throw new UsageError(`${bad}: expected HH:MM or an ISO 8601 time such as 2030-01-02T03:04:05Z`);
  }
  if (at.getTime() < now.getTime() - PAST_SLACK_MS) throw new UsageError(`${bad}: that time has passed`);
  if (at.getTime() > now.getTime() + MAX_DELAY_MS) throw new UsageError(`${bad}: more than a year ahead`);
  return at;
}

/** The run's not_before from --in or --at (at most one), or null when it may start at once. */
export function notBefore(inText: unknown, atText: unknown, where = ''): string | null {
  if (inText !== undefined && atText !== undefined)
    throw new UsageError(`${where}--in and --at: give one or the other`);
  if (inText !== undefined) {
    return new Date(Date.now() + parseDuration(inText, `${where}--in`, MAX_DELAY_MS)).toISOString();
  }
  if (atText !== undefined) return parseAt(atText, `${where}--at`).toISOString();
  return null;
}

export const isDue = (notBeforeIso: string | null | undefined, now = Date.now()): boolean =>
  !notBeforeIso || Date.parse(notBeforeIso) <= now;

/** One detached sleeper per distinct time still ahead; each advances the queue when its time comes. */
export function armSleepers(home: Home, times: (string | null | undefined)[]): void {
  const now = Date.now();
  const waits = new Set<number>();
  for (const t of times) if (t && !isDue(t, now)) waits.add(Date.parse(t) - now);
  // the marker is the job's alone: a sleeper must never be mistaken for a job by bgmon-stop
  const { BGMON_JOB_ID: _marker, ...env } = process.env;
  // loaded here, not at the top: every command imports this module, few spawn (node:child_process
  // brings net and stream, about 3 ms of start-up)
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  for (const ms of waits) {
    // a few ms late rather than early: an early advance finds the job not yet due
    const seconds = ((ms + 20) / 1000).toFixed(3);
    const script = 'sleep "$1"; exec "$2" "$3" --advance-queue';
    const child = spawn('/bin/sh', ['-c', script, 'bgmon-sleeper', seconds, process.execPath, entryScript()], {
      detached: true,
      stdio: 'ignore',
      env: { ...env, BGMON_HOME: home.root },
    });
    child.unref();
  }
}

function entryScript(): string {
  return resolve(process.argv[1] ?? '');
}
