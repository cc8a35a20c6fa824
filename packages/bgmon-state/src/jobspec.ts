import { existsSync, readFileSync } from 'node:fs';
import { isTty } from './fsutil';
import { BgmonError, StateError, UsageError } from './errors';
import { assertName, deriveName } from './names';
import { assertLaunchable } from './launch';
import { ensureHome, recordPath, type Home } from './paths';
import { isTerminal, newRunId, readRecord, type JobRecord } from './record';
import { currentState } from './classify';
import { notBefore } from './delay';
import { ndjson } from './output';
import { out } from './stdout';
import { assertQueueName, parseSlots, reserveQueueSeq } from './queue-slots';
import {
  checkStart,
  retryAndHookFields,
  settleSubmitted,
  submitJob,
  type CheckedStart,
  type StartOptions,
} from './start';

/*
 * `bgmon-start -`: job specs as NDJSON on stdin, one per line, shaped like records: name, cmd
 * (required), cwd, env ({"K": "V"}), after, queue, slots, in, at. Every line is checked before
 * anything is written, so a bad line starts nothing: one message naming the line, the exit code
 * a single bgmon-start would give (2 usage, 1 a name in use, 127 a command not found). Then
 * every job is submitted in order (an `after` may name a job of an earlier line) and the queues
 * are advanced once, by this one process.
 */

/** Options given on the command line beside `-`: defaults for every line. */
export type SpecDefaults = Omit<StartOptions, 'cmd' | 'name'> & { in?: string; at?: string };

interface Spec {
  line: number;
  opts: StartOptions;
  checked: CheckedStart;
}

const FIELDS = new Set(['name', 'cmd', 'cwd', 'env', 'after', 'queue', 'slots', 'in', 'at']);
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

const isStringArray = (x: unknown): x is string[] => Array.isArray(x) && x.every((a) => typeof a === 'string');

function fieldsOf(obj: Record<string, unknown>, defaults: SpecDefaults): StartOptions {
  const unknown = Object.keys(obj).find((key) => !FIELDS.has(key));
  if (unknown !== undefined) throw new UsageError(`unknown field ${JSON.stringify(unknown)}`);
  const { name, cmd, cwd, env, after, queue, slots } = obj;
  if (name !== undefined) assertName(name as string);
  if (!isStringArray(cmd) || cmd.length === 0) throw new UsageError('"cmd" must be a non-empty array of strings');
  if (cwd !== undefined && typeof cwd !== 'string') throw new UsageError('"cwd" must be a string');
  const isObject = typeof env === 'object' && env !== null && !Array.isArray(env);
  if (env !== undefined && !isObject) throw new UsageError('"env" must be an object');
  const envList = Object.entries((env ?? {}) as Record<string, unknown>).map(([k, v]) => {
    if (ENV_KEY.test(k) && typeof v === 'string') return `${k}=${v}`;
    throw new UsageError(`"env": ${JSON.stringify(k)} must be a variable name with a string value`);
  });
  const afterList = typeof after === 'string' ? [after] : (after ?? []);
  if (!isStringArray(afterList)) throw new UsageError('"after" must be a name or an array of names');
  afterList.forEach(assertName);
  const inField = typeof obj.in === 'number' ? secondsText(obj.in) : obj.in;
  const inText = inField ?? (obj.at === undefined ? defaults.in : undefined);
  const atText = obj.at ?? (obj.in === undefined ? defaults.at : undefined);
  return {
    name: name as string | undefined,
    cmd,
    cwd: (cwd as string | undefined) ?? defaults.cwd,
    env: [...defaults.env, ...envList],
    after: [...defaults.after, ...afterList],
    queue: queue === undefined ? defaults.queue : assertQueueName(queue, '"queue"'),
    slots: slots === undefined ? defaults.slots : parseSlots(slots, '"slots"'),
    notBefore: notBefore(inText, atText),
    // --retry and --on-end beside "-" hold for every line (a line has no fields of its own for them)
    retry: defaults.retry,
    onEnd: defaults.onEnd,
  };
}

/**
 * "in": 90 is 90 seconds, as "90" is (JSON users write numbers), in the plain decimal form
 * --in reads: 1e-7 is "0.000" and 1e21 a number too long, not a form never written.
 */
function secondsText(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  return Math.min(seconds, 1e20).toFixed(3);
}

/** Refuses a name that is QUEUED or RUNNING now (exit 1, as bgmon-start NAME would). */
function assertFree(home: Home, name: string): void {
  let rec: JobRecord | null;
  try {
    rec = readRecord(home, name);
  } catch (err) {
    throw new StateError(`${(err as Error).message}; remove it with bgmon-rm ${name} before reusing the name`);
  }
  const status = rec ? currentState(home, rec).status : null;
  if (status && !isTerminal(status)) throw new StateError(`job ${name} is ${status}; stop it or pick another name`);
}

/** A line whose command the kernel would refuse (E2BIG) is refused with the input, before any line starts. */
function assertLineLaunchable(home: Home, opts: StartOptions, checked: CheckedStart): void {
  const name = opts.name ?? deriveName(opts.cmd, () => false);
  const id = newRunId();
  const env = { ...checked.env, BGMON_JOB: name, BGMON_JOB_ID: id, BGMON_HOME: home.root };
  assertLaunchable({ name, id, cmd: opts.cmd, retry: checked.extras.retry, cwd: checked.cwd }, env);
}

function parseLine(home: Home, text: string, defaults: SpecDefaults, earlier: Set<string>): Omit<Spec, 'line'> {
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new UsageError('not JSON');
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new UsageError('not a JSON object');
  const opts = fieldsOf(obj as Record<string, unknown>, defaults);
  const checked = checkStart(opts);
  assertLineLaunchable(home, opts, checked);
  if (opts.name !== undefined) {
    if (earlier.has(opts.name)) throw new UsageError(`job ${opts.name} is named twice in the input`);
    assertFree(home, opts.name);
  }
  for (const dep of opts.after) {
    if (!earlier.has(dep) && !existsSync(recordPath(home, dep))) {
      throw new UsageError(`"after": no such job ${dep} (on disk or on an earlier line)`);
    }
  }
  if (opts.name !== undefined) earlier.add(opts.name);
  return { opts, checked };
}

/** The same error (and exit code), naming the stdin line it is about. */
function atLine(err: unknown, line: number, more = ''): unknown {
  if (!(err instanceof BgmonError)) return err;
  return new (err.constructor as new (m: string) => BgmonError)(`stdin line ${line}: ${err.message}${more}`);
}

/** Every line checked; the first bad one throws, naming its line number. Blank lines are skipped. */
export function parseJobSpecs(home: Home, text: string, defaults: SpecDefaults): Spec[] {
  const specs: Spec[] = [];
  const earlier = new Set<string>();
  const rows = text.split('\n');
  for (let i = 0; i < rows.length; i++) {
    if (rows[i].trim() === '') continue;
    try {
      specs.push({ line: i + 1, ...parseLine(home, rows[i], defaults, earlier) });
    } catch (err) {
      throw atLine(err, i + 1);
    }
  }
  return specs;
}

/** Checks every spec, then submits them all in order and advances their queues once. */
export async function startJobs(home: Home, text: string, defaults: SpecDefaults): Promise<JobRecord[]> {
  retryAndHookFields(defaults); // bad --retry or --on-end beside "-": refused whatever stdin holds
  const specs = parseJobSpecs(home, text, defaults);
  if (specs.length === 0) return [];
  ensureHome(home);
  const seqs = await reserveSeqs(home, specs);
  const recs: JobRecord[] = [];
  for (let i = 0; i < specs.length; i++) {
    try {
      recs.push(await submitJob(home, specs[i].opts, specs[i].checked, seqs[i]));
    } catch (err) {
      // another command took a name after the check: what was submitted runs, so say which
      if (recs.length > 0) out(ndjson(await settleSubmitted(home, recs)));
      throw atLine(err, specs[i].line, recs.length > 0 ? ` (the ${recs.length} jobs before it were submitted)` : '');
    }
  }
  return settleSubmitted(home, recs);
}

/** Each queued spec's place in its queue: one lock per queue for the whole input; the last --slots wins. */
async function reserveSeqs(home: Home, specs: Spec[]): Promise<(number | null)[]> {
  const byQueue = new Map<string, { count: number; slots?: number }>();
  for (const { opts } of specs) {
    if (opts.queue === undefined) continue;
    const q = byQueue.get(opts.queue) ?? { count: 0 };
    byQueue.set(opts.queue, { count: q.count + 1, slots: opts.slots ?? q.slots });
  }
  const next = new Map<string, number>();
  for (const [queue, { count, slots }] of byQueue) next.set(queue, await reserveQueueSeq(home, queue, count, slots));
  return specs.map(({ opts }) => {
    if (opts.queue === undefined) return null;
    const seq = next.get(opts.queue)!;
    next.set(opts.queue, seq + 1);
    return seq;
  });
}

/** All of stdin, for `bgmon-start -`; a terminal is refused (a pipe or a file is expected). */
export function readSpecsInput(): string {
  if (isTty(0)) throw new UsageError('-: reads job specs (NDJSON) from stdin, which is a terminal');
  return readFileSync(0, 'utf8');
}
