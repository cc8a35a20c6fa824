import { watch, type FSWatcher } from 'node:fs';
import type { Home } from './paths';
import { isTerminal, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { advanceQueue } from './queue';
import { isReadyToLeaveQueue } from './queue-rules';
import { parseSignal } from './proc';
import { NotFoundError, UsageError } from './errors';
import { foldEnd } from './fold';
import { readRun } from './history';
import { silentMs, withActivity } from './activity';
import { closeScan, newScan, openScan, scanLast, scanNew, type LogMatch, type LogScan } from './log-match';
import type { Target } from './select';

export interface WaitOptions {
  timeoutMs: number | null;
  any: boolean;
  /** also return when a RUNNING job has been silent (no log output) this long: exit IDLE_EXIT */
  idleMs?: number | null;
  /** also return (exit 0) when a line of the one job's run matches */
  until?: RegExp | null;
}

export interface WaitResult {
  /** the records to print (with their log activity) */
  records: JobRecord[];
  code: number;
  /** with --until: the line that matched (printed instead of the records) */
  match?: LogMatch;
}

/** bgmon-wait --idle: a job has been silent for the duration. Not 124 (timeout), 125 as timeout(1) leaves it free. */
export const IDLE_EXIT = 125;

// Records change by rename in jobs/, which inotify reports at once; this slower re-check
// only catches what no file event announces: a process that died with its supervisor (DEAD),
// and a job going silent (--idle).
const RECHECK_MS = 250;

/** The exit status the contract gives one ended job. */
export function jobExitCode(rec: JobRecord): number {
  if (rec.status === 'SUCCEEDED') return 0;
  if (rec.status === 'FAILED') {
    // a FAILED run never exits 0, whatever a hand-made record says (256 would exit 0 too)
    if (rec.exit_code !== null && rec.exit_code >= 1 && rec.exit_code <= 255) return rec.exit_code;
    const sig = rec.signal ? parseSignal(rec.signal) : null;
    return sig ? 128 + sig : 1;
  }
  return 1;
}

export function waitExitCode(ended: JobRecord[]): number {
  if (ended.length === 1) return jobExitCode(ended[0]);
  return ended.every((r) => r.status === 'SUCCEEDED') ? 0 : 1;
}

/** What one wait knows between rounds. */
interface Waiting {
  /** the runs waited for: a name's current run (id null), or one run (NAME@ID, a record on stdin) */
  runs: Target[];
  opts: WaitOptions;
  /** each job as last seen, to tell "removed while waited for" from "never existed" */
  last: Map<string, JobRecord>;
  /** a queued job may leave the queue: advance it before deciding */
  queued: boolean;
  /** with --until: the run being read, bound when the wait began */
  scan: LogScan | null;
}

/**
 * The record of the run waited for: the name's current run, or, for a target with an id that is
 * no longer current (rerun meanwhile), that run's kept record, which has ended.
 */
function readWaited(home: Home, target: Target): JobRecord | null {
  const rec = readRecord(home, target.name);
  if (target.id === null || rec?.id === target.id) return rec;
  return readRun(home, target.name, target.id);
}

/** The run now; with --until, the run that was current when the wait began, even once rerun. */
function readJob(home: Home, w: Waiting, target: Target): JobRecord {
  const name = target.id === null ? target.name : `${target.name}@${target.id}`;
  // a corrupt record says so (exit 1), also one that was fine a moment ago: it was not removed
  let rec = readWaited(home, target);
  if (!rec && !w.last.has(name)) throw new NotFoundError(`no such job: ${name}`);
  if (!rec) throw new NotFoundError(`job ${name} was removed while waiting for it`);
  // a rerun happens only after the bound run has ended: its kept record says how
  if (w.scan && rec.id !== w.scan.id) rec = readRun(home, target.name, w.scan.id) ?? w.last.get(name)!;
  if (isReadyToLeaveQueue(home, rec)) w.queued = true;
  const cur = currentState(home, rec);
  w.last.set(name, cur);
  return cur;
}

function snapshot(home: Home, w: Waiting): JobRecord[] {
  w.queued = false;
  return w.runs.map((target) => readJob(home, w, target));
}

/** --until: the run's log read on from where the last round stopped (to its end once the run has ended). */
function matchRound(home: Home, scan: LogScan, rec: JobRecord): WaitResult | null {
  if (rec.status === 'QUEUED') return null; // its log appears when it starts
  openScan(home, scan, rec.started_at !== null);
  // the state was read first: once it says ended, everything the run wrote is in the file
  const match = isTerminal(rec.status) ? scanLast(scan) : scanNew(scan);
  return match ? { records: [], code: 0, match } : null;
}

/** The jobs have ended (all, or one with --any): fold their ends so the record files say it too. */
async function endResult(home: Home, w: Waiting, ended: JobRecord[]): Promise<WaitResult> {
  for (const r of ended) await foldEnd(home, r.name, r.id);
  // --until: a run that succeeded without printing the line did not do what was waited for
  const code = w.scan && ended[0].status === 'SUCCEEDED' ? 1 : waitExitCode(ended);
  return { records: ended.map(withActivity), code };
}

/** --idle: the RUNNING jobs silent for at least the duration, if any. */
function idleResult(recs: JobRecord[], idleMs: number | null | undefined): WaitResult | null {
  if (idleMs === null || idleMs === undefined) return null;
  const now = Date.now();
  const idle = recs.map(withActivity).filter((r) => (silentMs(r, now) ?? -1) >= idleMs);
  return idle.length > 0 ? { records: idle, code: IDLE_EXIT } : null;
}

/** One look at every job: a matching line, the ends waited for, or a silent job settle the wait. */
async function stateRound(home: Home, w: Waiting): Promise<WaitResult | null> {
  let recs = snapshot(home, w);
  if (w.queued) {
    await advanceQueue(home);
    recs = snapshot(home, w);
  }
  const matched = w.scan ? matchRound(home, w.scan, recs[0]) : null;
  if (matched) return matched;
  const ended = recs.filter((r) => isTerminal(r.status));
  if (w.opts.any ? ended.length > 0 : ended.length === recs.length) return endResult(home, w, ended);
  return idleResult(recs, w.opts.idleMs);
}

/** What woke a round: a log grew (read logs only), a record changed or the re-check, the timeout. */
type Wake = 'log' | 'state' | 'timeout';
const RANK: Record<Wake, number> = { log: 0, state: 1, timeout: 2 };

async function round(home: Home, w: Waiting, why: Wake): Promise<WaitResult | null> {
  if (why === 'timeout') return { records: snapshot(home, w).map(withActivity), code: 124 };
  if (why === 'state') return stateRound(home, w);
  const match = w.scan && w.scan.fd !== null ? scanNew(w.scan) : null;
  return match ? { records: [], code: 0, match } : null;
}

/**
 * Runs rounds on file events (jobs/, and logs/ when asked), on the re-check and at the timeout
 * until one settles; then everything is torn down in one place. Events during a round make one
 * more round (the most telling of them), never a round per event.
 */
function settleOnEvents<T>(
  home: Home,
  watchLogs: boolean,
  timeoutMs: number | null,
  run: (why: Wake) => Promise<T | null>,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const watchers: FSWatcher[] = [];
    const timers: NodeJS.Timeout[] = [];
    let done = false;
    let busy = false;
    let pending: Wake | null = null;
    const end = (settle: () => void) => {
      if (done) return;
      done = true;
      watchers.forEach((x) => x.close());
      timers.forEach((t) => clearTimeout(t));
      settle();
    };
    const fail = (err: unknown) => end(() => reject(err));
    const wake = async (why: Wake) => {
      if (done) return;
      if (pending === null || RANK[why] > RANK[pending]) pending = why;
      if (busy) return;
      busy = true;
      try {
        for (let next: Wake | null = pending; next !== null && !done; next = pending) {
          pending = null;
          const result = await run(next);
          if (result !== null) end(() => resolve(result));
        }
      } catch (err) {
        fail(err);
      } finally {
        busy = false;
      }
    };
    try {
      watchers.push(watch(home.jobs, () => void wake('state')).on('error', fail));
      if (watchLogs) watchers.push(watch(home.logs, () => void wake('log')).on('error', fail));
    } catch (err) {
      return fail(err);
    }
    timers.push(setInterval(() => void wake('state'), RECHECK_MS));
    if (timeoutMs !== null) timers.push(setTimeout(() => void wake('timeout'), timeoutMs));
    void wake('state');
  });
}

/**
 * Waits until the jobs have ended (one with --any), a RUNNING job has been silent for --idle, a
 * line of the one job's run matches --until, or the timeout. Reacts at once to file events: an end
 * renames a record in jobs/, output grows a log in logs/.
 */
export async function waitForJobs(home: Home, targets: Array<string | Target>, opts: WaitOptions): Promise<WaitResult> {
  // Waiting for nothing is not a success: `... | bgmon-wait && deploy` must not deploy.
  if (targets.length === 0)
    throw new NotFoundError('nothing to wait for: the selection is empty (no names, or no records on stdin)');
  if (opts.until && targets.length !== 1)
    throw new UsageError(`--until reads one job's log; the selection has ${targets.length} jobs`);
  const runs = targets.map((t) => (typeof t === 'string' ? { name: t, id: null } : t));
  const w: Waiting = { runs, opts, last: new Map(), queued: false, scan: null };
  if (opts.until) {
    const [first] = snapshot(home, w);
    w.scan = newScan(first.name, first.id, opts.until);
  }
  try {
    return await settleOnEvents(home, w.scan !== null, opts.timeoutMs, (why) => round(home, w, why));
  } finally {
    if (w.scan) closeScan(w.scan);
  }
}
