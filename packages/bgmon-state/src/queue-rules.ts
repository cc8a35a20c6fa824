import { readdirSync } from 'node:fs';
import { UsageError } from './errors';
import { readRun } from './history';
import type { Home } from './paths';
import { isTerminal, readRecord, type JobRecord, type Status } from './record';
import { runState } from './run-state';
import { isDue } from './delay';
import { queueNow } from './queue-slots';

/*
 * The queue's rules, read-only: what a queued job's state is and whether it may leave the
 * queue (advancing it, which launches, is queue.ts).
 *
 * --after without a daemon: a QUEUED job is a record plus run/<name>.queued (its id and
 * environment). No process waits for it. Whenever a supervisor records an end it runs
 * `--advance-queue` if any queue file exists, which starts or cancels every queued job that
 * can leave the queue. bgmon-status and bgmon-wait advance it too, so a chain whose
 * supervisor was killed still moves on the next time anybody looks.
 *
 * A dependent waits for runs, not names: `after_ids` binds each `after` name to the run that
 * was current when the dependent was queued. A rerun of the name keeps the old run's record in
 * history/ (see history.ts), so the dependent still reads the outcome of the run it waited for;
 * a run that is gone altogether (removed) counts as CANCELLED: it will never succeed.
 *
 * Chains are walked with an explicit stack, never by recursion: a chain of any length has an
 * exact answer and cannot overflow the stack.
 */

export interface AfterPlan {
  action: 'run' | 'queue' | 'cancel';
  /** the run of each predecessor the new job is bound to (name -> id) */
  ids: Record<string, string>;
  /** with 'cancel': which predecessor did not succeed */
  reason: string | null;
}

/** A predecessor as a dependent names it; id null in records written before runs were bound. */
interface Bound {
  name: string;
  id: string | null;
}

export function readOrNull(home: Home, name: string): JobRecord | null {
  try {
    return readRecord(home, name);
  } catch {
    return null;
  }
}

export function boundRuns(rec: JobRecord): Bound[] {
  const ids = rec.after_ids;
  // own properties only: "constructor" is a valid job name
  return rec.after.map((name) => ({ name, id: ids && Object.hasOwn(ids, name) ? ids[name] : null }));
}

/** The record of exactly that run: the current one when its id matches, else the kept one. */
function runRecord(home: Home, dep: Bound): JobRecord | null {
  const cur = readOrNull(home, dep.name);
  if (dep.id === null || (cur && cur.id === dep.id)) return cur;
  return readRun(home, dep.name, dep.id);
}

const runKey = (name: string, id: string) => `${name}@${id}`;

/*
 * States found during one look, by run. Without it a chain of N queued jobs is walked once per
 * job (N² record reads). A look is one synchronous pass (forgotten on the next turn of the event
 * loop) or one pass of advanceQueue, which writes its own changes into it. A state another
 * process changes meanwhile can only be seen late, never wrongly acted on: a stale non-terminal
 * state makes the queue wait, and whoever ended that run advances the queue afterwards.
 */
let look: Map<string, Status> | null = null;
let advancing = 0;

/** advanceQueue's passes: each looks afresh, and a look lasts the whole pass. */
export function beginAdvancing(): void {
  advancing++;
  look = null;
}

export function endAdvancing(): void {
  advancing--;
  look = null;
}

export const newLook = (): void => {
  look = null;
};

/** What advancing just did to a run, for the rest of the pass. */
export const rememberState = (name: string, id: string, status: Status): void => {
  lookStates().set(runKey(name, id), status);
};

function lookStates(): Map<string, Status> {
  if (look) return look;
  const fresh = new Map<string, Status>();
  look = fresh;
  if (advancing === 0) setImmediate(() => advancing === 0 && look === fresh && (look = null));
  return fresh;
}

const cancels = (s: Status) => isTerminal(s) && s !== 'SUCCEEDED';

/** What a queued job does given its predecessors' states: cancelled as soon as one did not succeed. */
export function decide(states: Status[]): AfterPlan['action'] {
  if (states.some(cancels)) return 'cancel';
  return states.every(isTerminal) ? 'run' : 'queue';
}

/** A predecessor's state when known without walking further, else its QUEUED record to walk. */
function lookUp(home: Home, dep: Bound, states: Map<string, Status>, walking: Set<string>): Status | JobRecord {
  const known = dep.id === null ? undefined : states.get(runKey(dep.name, dep.id));
  if (known) return known;
  const rec = runRecord(home, dep);
  if (!rec) return 'CANCELLED';
  const key = runKey(rec.name, rec.id);
  // a run already on the walk is a cycle (only hand-made records have one): it never ends by itself
  const found = states.get(key) ?? (walking.has(key) ? 'QUEUED' : undefined);
  if (found) return found;
  if (rec.status === 'QUEUED') return rec;
  const status = runState(home, rec).status;
  states.set(key, status);
  return status;
}

interface Frame {
  key: string;
  preds: Bound[];
  next: number;
  cancelled: boolean;
}

/** QUEUED or CANCELLED: a queued run is cancelled once any run it waits for, at any depth, did not succeed. */
function queuedStatus(home: Home, root: JobRecord): Status {
  const states = lookStates();
  const rootKey = runKey(root.name, root.id);
  const known = states.get(rootKey);
  if (known) return known;
  const frame = (rec: JobRecord): Frame => ({
    key: runKey(rec.name, rec.id),
    preds: boundRuns(rec),
    next: 0,
    cancelled: false,
  });
  const stack = [frame(root)];
  const walking = new Set([rootKey]);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    if (!top.cancelled && top.next < top.preds.length) {
      const found = lookUp(home, top.preds[top.next++], states, walking);
      if (typeof found !== 'string') {
        stack.push(frame(found));
        walking.add(stack[stack.length - 1].key);
      } else if (cancels(found)) top.cancelled = true;
      continue;
    }
    stack.pop();
    walking.delete(top.key);
    states.set(top.key, top.cancelled ? 'CANCELLED' : 'QUEUED');
    if (top.cancelled && stack.length > 0) stack[stack.length - 1].cancelled = true;
  }
  return states.get(rootKey)!;
}

/** The current state of each run a job waits for, in the order of its `after`. */
export function predecessorStates(home: Home, rec: JobRecord): Status[] {
  const states = lookStates();
  return boundRuns(rec).map((dep) => {
    const found = lookUp(home, dep, states, new Set());
    return typeof found === 'string' ? found : queuedStatus(home, found);
  });
}

export function cancelReason(home: Home, deps: Bound[], states: Status[]): string {
  const i = states.findIndex(cancels);
  const dep = deps[i];
  const run = dep.id === null ? dep.name : runKey(dep.name, dep.id);
  return runRecord(home, dep) ? `${run} ended ${states[i]}` : `${run} was removed`;
}

/** "Q -> P -> Q": the path the cycle check followed from the new job `name` to `last`. */
function cyclePath(from: Map<string, string>, last: string, name: string): string {
  const back: string[] = [];
  for (let job = last; job !== ''; job = from.get(job)!) back.push(job);
  return [name, ...back.reverse(), name].join(' -> ');
}

/** Refuses a new job `name` that a queued job it would wait for already waits for, by name. */
function assertNoCycle(home: Home, name: string, preds: JobRecord[]): void {
  const from = new Map<string, string>(); // job -> the job found waiting for it ('' for ours)
  const todo: JobRecord[] = [];
  for (const rec of preds) {
    if (from.has(rec.name)) continue;
    from.set(rec.name, '');
    todo.push(rec);
  }
  while (todo.length > 0) {
    const rec = todo.pop()!;
    if (rec.status !== 'QUEUED') continue;
    for (const next of rec.after) {
      if (next === name) throw new UsageError(`--after ${cyclePath(from, rec.name, name)}: that is a cycle`);
      if (from.has(next)) continue;
      from.set(next, rec.name);
      const nextRec = readOrNull(home, next);
      if (nextRec) todo.push(nextRec);
    }
  }
}

/** Validates --after names (exist, no cycle), binds them to their current runs, decides what the new job does now. */
export function planAfter(home: Home, name: string, after: string[]): AfterPlan {
  const ids: Record<string, string> = {};
  if (after.length === 0) return { action: 'run', ids, reason: null };
  if (after.includes(name)) throw new UsageError(`--after ${name} -> ${name}: that is a cycle`);
  const preds = after.map((dep) => {
    // NAME@ID (validated by the caller): that run, current or kept
    const [depName, depId] = dep.split('@');
    const rec = depId === undefined ? readOrNull(home, dep) : runRecord(home, { name: depName, id: depId });
    if (!rec) throw new UsageError(`--after ${dep}: no such ${depId === undefined ? 'job' : 'run'}`);
    ids[depName] = rec.id;
    return rec;
  });
  assertNoCycle(home, name, preds);
  const deps = preds.map((rec) => ({ name: rec.name, id: rec.id }));
  const stateOf = (rec: JobRecord) => (rec.status === 'QUEUED' ? queuedStatus(home, rec) : runState(home, rec).status);
  const states = preds.map(stateOf);
  const action = decide(states);
  return { action, ids, reason: action === 'cancel' ? cancelReason(home, deps, states) : null };
}

/** What a QUEUED record really is now: CANCELLED as soon as a run it waits for did not succeed. */
export function queuedState(home: Home, rec: JobRecord): JobRecord {
  return queuedStatus(home, rec) === 'CANCELLED' ? { ...rec, status: 'CANCELLED' } : rec;
}

/**
 * True when a record still QUEUED on disk should leave the queue (one of its predecessors did not
 * succeed; or they have all ended, its start time has come and its queue has a free slot), so
 * someone should advance the queue. Give it the record as read, not its current state (which may
 * already say CANCELLED while the file still says QUEUED).
 */
export function isReadyToLeaveQueue(home: Home, rec: JobRecord): boolean {
  if (rec.status !== 'QUEUED') return false;
  const action = decide(predecessorStates(home, rec));
  if (action !== 'run') return action === 'cancel';
  return isDue(rec.not_before) && (!rec.queue || hasFreeSlot(home, rec.queue));
}

/*
 * Whether a queue has a free slot, per look (status over 1,000 queued jobs of one queue asks once).
 * Read without the queue's lock: a wrong "yes" only makes the caller advance the queue, which
 * counts again under the lock.
 */
let slotLook: { look: Map<string, Status>; free: Map<string, boolean> } | null = null;

export function hasFreeSlot(home: Home, queue: string): boolean {
  const states = lookStates();
  if (slotLook?.look !== states) slotLook = { look: states, free: new Map() };
  let free = slotLook.free.get(queue);
  if (free === undefined) {
    const q = queueNow(home, queue);
    free = q.running.length < q.slots;
    slotLook.free.set(queue, free);
  }
  return free;
}

/**
 * Jobs still waiting (QUEUED and not bound to be cancelled), by each name they wait for: a
 * predecessor they name must stay readable until they leave the queue.
 */
export function waitingDependents(home: Home): Map<string, string[]> {
  const byPredecessor = new Map<string, string[]>();
  for (const name of queuedNames(home)) {
    const rec = readOrNull(home, name);
    if (rec?.status !== 'QUEUED' || queuedStatus(home, rec) !== 'QUEUED') continue;
    for (const dep of rec.after) {
      const list = byPredecessor.get(dep);
      if (list) list.push(name);
      else byPredecessor.set(dep, [name]);
    }
  }
  return byPredecessor;
}

export function queuedNames(home: Home): string[] {
  try {
    return readdirSync(home.run)
      .filter((f) => f.endsWith('.queued'))
      .map((f) => f.slice(0, -7));
  } catch {
    return [];
  }
}
