import { existsSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { StateError, UsageError } from './errors';
import { assertName, deriveName } from './names';
import { ensureHome, logPath, previousLogPath, recordPath, type Home } from './paths';
import { isTerminal, newRunId, nowIso, readRecord, type JobRecord, type RetrySettings } from './record';
import { currentState } from './classify';
import { lock, unlock } from './lock';
import { assertExecFits, launch } from './launch';
import { markWaited, prepareHandOff } from './handoff';
import { advanceQueueFully, enqueue, removeQueueEntry } from './queue';
import { assertQueueName, reserveQueueSeq } from './queue-slots';
import { armSleepers, isDue } from './delay';
import { isReadyToLeaveQueue, newLook, planAfter, readOrNull } from './queue-rules';
import { renameOwnFile, unlinkQuietly } from './fsutil';
import { endPath, sparePath } from './end';
import { removeStopMarkers } from './stop-marker';
import { archiveRun, envKeys, envPath, keepRunEnv, readRunEnv } from './history';
import { dropHookEnv, keepHookEnv, markHook, startHook } from './on-end';
import { readTarget, parseTarget } from './select';
import { NotFoundError } from './errors';
import { resolveExecutable } from './exec';
import { retrySettings, type RetryFlags } from './retry';
import { writeEndedRecord } from './on-end';

export { resolveExecutable };

export interface StartOptions {
  name?: string;
  cwd?: string;
  /** K=V strings from --env */
  env: string[];
  after: string[];
  cmd: string[];
  /** --queue Q: wait for a free slot of Q (see queue-slots.ts) */
  queue?: string;
  /** --slots N: Q's number of slots from now on */
  slots?: number;
  /** --in/--at: not before this time (ISO-8601), see delay.ts */
  notBefore?: string | null;
  /** --retry and its companions, as given */
  retry?: RetryFlags;
  /** --on-end CMD */
  onEnd?: string;
}

/** The record fields of --retry and --on-end; a usage error for bad values. */
export function retryAndHookFields(opts: Pick<StartOptions, 'retry' | 'onEnd'>): Partial<JobRecord> {
  const retry = retrySettings(opts.retry ?? {});
  if (opts.onEnd !== undefined && (opts.onEnd.trim() === '' || opts.onEnd.includes('\0'))) {
    throw new UsageError('--on-end: expected a shell command');
  }
  return {
    ...(retry ? { retry } : {}),
    ...(opts.onEnd !== undefined ? { on_end: opts.onEnd, on_end_ran_at: null } : {}),
  };
}

function resolveCwd(dir: string | undefined): string {
  const cwd = resolve(dir ?? process.cwd());
  let ok = false;
  try {
    ok = statSync(cwd).isDirectory();
  } catch {}
  if (!ok) throw new UsageError(`--cwd ${cwd}: not a directory`);
  return cwd;
}

/**
 * The job's environment: base with the --env assignments. A refusal never quotes what follows
 * '=' (values are often secrets), nor a word without '=' (it may be a secret given alone).
 */
export function jobEnvironment(base: NodeJS.ProcessEnv, assignments: string[]): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const kv of assignments) {
    const eq = kv.indexOf('=');
    if (eq < 0) throw new UsageError('--env: expected KEY=VALUE; a value without KEY= was given (not shown)');
    const key = kv.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
      throw new UsageError(
        `--env ${JSON.stringify(key)}=...: not a variable name (letters, digits, _; no digit first)`,
      );
    // defined, not assigned: env.__proto__ = v would set the object's prototype, not a variable
    Object.defineProperty(env, key, { value: kv.slice(eq + 1), enumerable: true, writable: true, configurable: true });
  }
  return env;
}

/** What a start needs, checked before anything is written: its directory and environment. */
export interface CheckedStart {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** --retry and --on-end as record fields, checked before anything is written */
  extras: Partial<JobRecord>;
}

/** Refuses a start that cannot work (usage errors, exit 2; a command not found, 127), writing nothing. */
export function checkStart(opts: StartOptions): CheckedStart {
  if (opts.cmd.length === 0) throw new UsageError('no command given: bgmon-start [options] -- CMD [ARG...]');
  // argv, environment and paths are C strings: a NUL (possible only in JSON input) cannot pass
  const nulIn = (list: string[]) => list.some((s) => s.includes('\0'));
  const where =
    (nulIn(opts.cmd) && 'the command') || (nulIn(opts.env) && 'an --env value') || (nulIn([opts.cwd ?? '']) && '--cwd');
  if (where) throw new UsageError(`${where}: contains a NUL byte, which no command can be given`);
  if (opts.name !== undefined) assertName(opts.name);
  // NAME@ID binds to that run (current or kept), see planAfter
  opts.after.forEach((dep) => parseTarget(dep).id === null && assertName(dep));
  if (opts.queue !== undefined) assertQueueName(opts.queue);
  if (opts.slots !== undefined && opts.queue === undefined) throw new UsageError('--slots: give --queue Q too');
  const cwd = resolveCwd(opts.cwd);
  const env = jobEnvironment(process.env, opts.env);
  resolveExecutable(opts.cmd[0], env.PATH, cwd);
  return { cwd, env, extras: retryAndHookFields(opts) };
}

/** Starts (or queues, or cancels) a job and returns its record as written. */
export async function startJob(home: Home, opts: StartOptions): Promise<JobRecord> {
  const checked = checkStart(opts);
  ensureHome(home);
  const seq = opts.queue === undefined ? null : await reserveQueueSeq(home, opts.queue, 1, opts.slots);
  const rec = await submitJob(home, opts, checked, seq);
  return (await settleSubmitted(home, [rec]))[0];
}

/**
 * Writes the new run under its name's lock: launched at once, or QUEUED (for --after, a queue's
 * slot or a start time), or CANCELLED at once. Queued runs are advanced by settleSubmitted.
 */
export async function submitJob(
  home: Home,
  opts: StartOptions,
  checked: CheckedStart,
  queueSeq: number | null,
): Promise<JobRecord> {
  const { cwd, env } = checked;
  const name = opts.name ?? deriveName(opts.cmd, (n) => existsSync(recordPath(home, n)));
  const held = await lock(home, name);
  let kept: JobRecord | null = null;
  try {
    const old = readRecordForReplace(home, name);
    const plan = planAfter(home, name, opts.after);
    const id = newRunId();
    Object.assign(env, { BGMON_JOB: name, BGMON_JOB_ID: id, BGMON_HOME: home.root });
    // before the replaced run is archived and its log moved: a refused start leaves it as it was
    assertExecFits({ name, id, cmd: opts.cmd, retry: checked.extras.retry, cwd }, env);
    const rec: JobRecord = {
      v: 1,
      name,
      id,
      status: 'QUEUED',
      cmd: opts.cmd,
      cwd,
      pid: null,
      created_at: nowIso(),
      started_at: null,
      ended_at: null,
      exit_code: null,
      signal: null,
      reason: null,
      log: logPath(home, name),
      previous_log: old ? keepLog(home, old) : null,
      after: [...new Set(opts.after.map((dep) => parseTarget(dep).name))],
      after_ids: plan.ids,
      ...laterFields(opts, queueSeq),
      host: hostname(),
      boot_id: null,
      starttime: null,
      sup_pid: null,
      sup_starttime: null,
      ...checked.extras,
    };
    kept = rec;
    keepEnvOf(home, rec, opts.env);
    keepHookEnv(home, rec, env);
    if (old) {
      // the replaced run's end is in its history record now
      unlinkQuietly(endPath(home, name, old.id));
      unlinkQuietly(sparePath(home, name, old.id));
    }
    // a stop marker names its run: only a replaced run can have left any (listing run/ per new
    // name made a batch of 1,000 new jobs read run/ 1,000 times)
    if (old) removeStopMarkers(home, name);
    removeQueueEntry(home, name);
    if (plan.action === 'cancel') {
      const cancelled: JobRecord = { ...rec, status: 'CANCELLED', ended_at: nowIso(), reason: plan.reason };
      return writeEndedRecord(home, cancelled);
    }
    if (plan.action === 'queue' || waitsForSlotOrTime(rec)) {
      enqueue(home, rec, env);
      // the runs it waits for end through Node (which starts it); a plain run of a queue is
      // prepared for its queue's hand-off
      for (const [dep, depId] of Object.entries(rec.after_ids ?? {})) markWaited(home, dep, depId);
      prepareHandOff(home, rec, env);
      return rec;
    }
    return await launch(home, rec, env);
  } catch (err) {
    if (kept) forgetUnrecorded(home, kept);
    throw err;
  } finally {
    unlock(held);
  }
}

/**
 * A start that failed before its record was written (launch, queue file) leaves no kept
 * environment (its --env values, its hook's copy of the whole environment): no record names that
 * run, so no bgmon-rm could ever find them.
 */
function forgetUnrecorded(home: Home, rec: JobRecord): void {
  if (readOrNull(home, rec.name)?.id === rec.id) return;
  unlinkQuietly(envPath(home, rec.name, rec.id));
  dropHookEnv(home, rec);
}

/** The record fields of --queue and --in/--at. */
const laterFields = (opts: StartOptions, queueSeq: number | null) => ({
  queue: opts.queue ?? null,
  queue_seq: queueSeq,
  not_before: opts.notBefore ?? null,
});

/** A run of a queue starts only when the queue starts it (under its lock); a delayed one when due. */
const waitsForSlotOrTime = (rec: JobRecord) => rec.queue != null || !isDue(rec.not_before);

/**
 * After submitting: advances the queues the new runs joined (so one with a free slot starts now,
 * and the record printed says RUNNING) and arms a sleeper for each start time still ahead.
 * Runs outside every job's lock: the queue's lock comes first.
 *
 * A run queued --after a predecessor is looked at again once its queue file is written: the
 * predecessor may have ended between the plan and that file, and its supervisor then found nothing
 * queued behind it. A supervisor writes the end and then lists the queue; a start writes the queue
 * file and then reads the end: whichever comes second sees the other, so the run is never left
 * waiting for a reader.
 */
export async function settleSubmitted(home: Home, recs: JobRecord[]): Promise<JobRecord[]> {
  const queued = recs.filter((r) => r.status === 'QUEUED');
  armSleepers(
    home,
    queued.map((r) => r.not_before),
  );
  newLook(); // the plan's look of the predecessors is what may be out of date
  if (!queued.some((r) => r.queue != null || (r.after.length > 0 && isReadyToLeaveQueue(home, r)))) return recs;
  const { launched } = await advanceQueueFully(home);
  return recs.map((r) => (launched.get(r.name)?.id === r.id ? launched.get(r.name)! : r));
}

/** The run of a name about to be reused, as it stands now: refused while it is live or unreadable. */
function readRecordForReplace(home: Home, name: string): JobRecord | null {
  let old: JobRecord | null;
  try {
    old = readRecord(home, name);
  } catch (err) {
    throw new StateError(`${(err as Error).message}; remove it with bgmon-rm ${name} before reusing the name`);
  }
  if (!old) return null;
  const cur = currentState(home, old);
  if (!isTerminal(cur.status)) throw new StateError(`job ${name} is ${cur.status}; stop it or pick another name`);
  // a queued run cancelled by its predecessors ends now, as the advancing queue would record it
  return cur.status === 'CANCELLED' && cur.ended_at === null ? { ...cur, ended_at: nowIso() } : cur;
}

/**
 * Keeps the run being replaced, under its id: its record in history/ (first, so a job queued
 * after that run never finds it missing) and its log beside the new one.
 */
function keepLog(home: Home, old: JobRecord): string | null {
  const kept = previousLogPath(home, old.name, old.id);
  // a run that ended unseen (DEAD, its supervisor gone) still gets its --on-end hook, once
  const archived = markHook({ ...old, log: kept });
  archiveRun(home, archived);
  // only a plain file of ours is kept; a link planted at the log is dropped, never followed
  const moved = renameOwnFile(logPath(home, old.name), kept);
  if (archived.on_end_ran_at !== old.on_end_ran_at) startHook(home, archived);
  return moved ? kept : null;
}

/** Keeps the run's --env values for --again (0600, apart from the record) and puts their keys in the record. */
function keepEnvOf(home: Home, rec: JobRecord, assignments: string[]): void {
  if (assignments.length === 0) return;
  keepRunEnv(home, rec.name, rec.id, assignments);
  rec.env_keys = envKeys(assignments);
}

/**
 * The options that start NAME (its current run) or NAME@ID (that run) again, exactly: the same
 * argv, cwd, --env values and --after names, with the options given beside --again winning (the
 * name, --cwd, --after replace; --env adds or replaces single keys). A run still QUEUED, RUNNING
 * or PAUSED is refused (exit 1): stop it first. Record fields that describe how to start (queue,
 * retries...) are copied by copyStartFields.
 */
export function againOptions(home: Home, which: string, given: StartOptions): StartOptions {
  if (given.cmd.length > 0) throw new UsageError("--again starts the run's own command: give no command");
  const target = parseTarget(which);
  if (target.id === null) assertName(target.name);
  const found = readTarget(home, target);
  if (!found) throw new NotFoundError(`--again ${which}: no such ${target.id === null ? 'job' : 'run'}`);
  const run = found.past ? found.record : currentState(home, found.record);
  if (!isTerminal(run.status))
    throw new StateError(`--again ${which}: the run is ${run.status}; it can be started again once it has ended`);
  const kept = run.env_keys && run.env_keys.length > 0 ? readRunEnv(home, run.name, run.id) : [];
  if (!kept) throw new StateError(`--again ${which}: the --env values of run ${run.name}@${run.id} are not kept`);
  return copyStartFields(run, {
    ...given,
    name: given.name ?? run.name,
    cwd: given.cwd ?? run.cwd,
    env: [...kept, ...given.env],
    after: given.after.length > 0 ? given.after : run.after,
    cmd: run.cmd,
  });
}

/**
 * Fields of a record that describe how its run was started, beyond cmd, cwd, env and after, and
 * the start option each sets unless it was given beside --again. A new start option that the
 * record keeps belongs here, so that --again repeats it.
 */
const START_FIELDS: Array<[keyof JobRecord, keyof StartOptions, (value: never) => unknown]> = [
  ['queue', 'queue', (queue: string | null) => queue ?? undefined],
  ['on_end', 'onEnd', (hook: string | null) => hook ?? undefined],
  [
    'retry',
    'retry',
    (r: RetrySettings | null) =>
      r && {
        retry: String(r.count),
        delay: `${r.delay_ms}ms`,
        maxDelay: `${r.max_delay_ms}ms`,
        on: r.on?.join(','),
      },
  ],
];

/** An option counts as given beside --again when it holds a value (--retry: its count). */
const isGiven = (option: keyof StartOptions, value: unknown) =>
  option === 'retry' ? (value as RetryFlags | undefined)?.retry !== undefined : value !== undefined;

function copyStartFields(run: JobRecord, opts: StartOptions): StartOptions {
  const copy: Record<string, unknown> = { ...opts };
  for (const [field, option, toOption] of START_FIELDS) {
    const value = run[field];
    if (!isGiven(option, copy[option]) && value !== undefined && value !== null)
      copy[option] = toOption(value as never);
  }
  return copy as unknown as StartOptions;
}
