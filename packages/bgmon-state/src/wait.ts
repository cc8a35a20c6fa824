import { watch, type FSWatcher } from 'node:fs';
import type { Home } from './paths';
import { isTerminal, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { advanceQueue } from './queue';
import { isReadyToLeaveQueue } from './queue-rules';
import { parseSignal } from './proc';
import { NotFoundError } from './errors';
import { foldEnd } from './fold';
import { readRun } from './history';
import type { Target } from './select';

export interface WaitOptions {
  timeoutMs: number | null;
  any: boolean;
}

export interface WaitResult {
  records: JobRecord[];
  code: number;
}

// Records change by rename in jobs/, which inotify reports at once; this slower re-check
// only catches what no file event announces: a process that died with its supervisor (DEAD).
const RECHECK_MS = 250;

/** The exit status the contract gives one ended job. */
export function jobExitCode(rec: JobRecord): number {
  if (rec.status === 'SUCCEEDED') return 0;
  if (rec.status === 'FAILED') {
    if (rec.exit_code !== null) return rec.exit_code;
    const sig = rec.signal ? parseSignal(rec.signal) : null;
    return sig ? 128 + sig : 1;
  }
  return 1;
}

export function waitExitCode(ended: JobRecord[]): number {
  if (ended.length === 1) return jobExitCode(ended[0]);
  return ended.every((r) => r.status === 'SUCCEEDED') ? 0 : 1;
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

export function waitForJobs(home: Home, targets: Array<string | Target>, opts: WaitOptions): Promise<WaitResult> {
  // Waiting for nothing is not a success: `... | bgmon-wait && deploy` must not deploy.
  if (targets.length === 0) return Promise.reject(new NotFoundError('nothing to wait for: the selection is empty (no names, or no records on stdin)'));
  const runs = targets.map((t) => (typeof t === 'string' ? { name: t, id: null } : t));
  const last = new Map<string, JobRecord>();
  let queued = false;
  const snapshot = (): JobRecord[] => {
    queued = false;
    return runs.map((target) => {
      const name = target.id === null ? target.name : `${target.name}@${target.id}`;
      let rec: JobRecord | null = null;
      try {
        rec = readWaited(home, target);
      } catch (err) {
        if (!last.has(name)) throw err; // corrupt from the start: say so (exit 1)
      }
      if (!rec && !last.has(name)) throw new NotFoundError(`no such job: ${name}`);
      if (!rec) throw new NotFoundError(`job ${name} was removed while waiting for it`);
      if (rec && isReadyToLeaveQueue(home, rec)) queued = true;
      const cur = rec ? currentState(home, rec) : last.get(name)!;
      last.set(name, cur);
      return cur;
    });
  };

  return new Promise((resolve, reject) => {
    let watcher: FSWatcher | null = null;
    let timer: NodeJS.Timeout | null = null;
    let interval: NodeJS.Timeout | null = null;
    let busy = false;
    let again = false;
    let finished = false;
    const finish = (result: WaitResult) => {
      if (finished) return;
      finished = true;
      watcher?.close();
      if (timer) clearTimeout(timer);
      if (interval) clearInterval(interval);
      resolve(result);
    };
    const check = async () => {
      if (finished) return;
      if (busy) {
        again = true; // an event arrived mid-check: look once more when this one is done
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          let recs = snapshot();
          if (queued) {
            await advanceQueue(home);
            recs = snapshot();
          }
          const ended = recs.filter((r) => isTerminal(r.status));
          if (opts.any ? ended.length > 0 : ended.length === recs.length) {
            // so that the record files say it too when the caller looks
            for (const r of ended) await foldEnd(home, r.name, r.id);
            finish({ records: ended, code: waitExitCode(ended) });
          }
        } while (again && !finished);
      } catch (err) {
        finished = true;
        watcher?.close();
        if (timer) clearTimeout(timer);
        if (interval) clearInterval(interval);
        reject(err);
      } finally {
        busy = false;
      }
    };
    watcher = watch(home.jobs, () => void check());
    interval = setInterval(() => void check(), RECHECK_MS);
    if (opts.timeoutMs !== null) timer = setTimeout(() => finish({ records: snapshot(), code: 124 }), opts.timeoutMs);
    void check();
  });
}
