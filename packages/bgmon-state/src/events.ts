import { watch } from 'node:fs';
import { basename } from 'node:path';
import { constants } from 'node:os';
import { ensureHome, type Home } from './paths';
import { isTerminal, listNames, type JobRecord } from './record';
import { nameMatcher } from './names';
import { matchTargets, oldestFirst } from './select';
import { statusesOf } from './status';
import { readRun } from './history';
import { withActivity } from './activity';
import { waitExitCode } from './wait';
import { NotFoundError, UsageError } from './errors';
import { out } from './stdout';

/*
 * bgmon-status --follow: the records as they are, then one line per change. Records change by
 * rename in jobs/ and supervisors write run ends (jobs/.<name>@<id>.end) in place: inotify
 * reports both at once, naming the file, so only that job is read again. A slow re-check
 * catches what no file announces: a job that died with its supervisor (DEAD), and a job paused
 * or resumed by a signal (only /proc changes).
 */

export type JobEvent = 'current' | 'queued' | 'started' | 'running' | 'paused' | 'resumed' | 'ended' | 'removed';

export interface FollowOptions {
  /** exit once every selected job has ended, with bgmon-wait's exit code */
  untilDone: boolean;
  /** print only lines whose record is in one of these states */
  filter: Set<string> | null;
  warn: (message: string) => void;
}

const RECHECK_MS = 250;
/** bgmon-wait's exit when a job was removed while waited for (NotFoundError) */
const NOT_FOUND_EXIT = 3;

/** --follow prints NDJSON lines only, and --until-done means nothing without it. */
export function checkFollowFlags(flags: Record<string, unknown>): void {
  if (flags['until-done'] && !flags.follow) throw new UsageError('--until-done: only with --follow');
  if (flags.follow && flags.table) throw new UsageError('--follow prints NDJSON lines; --table cannot follow');
  if (flags.follow && flags.resources) throw new UsageError('--follow and --resources: use them in separate calls');
  // filters --follow does not apply: silently ignoring them would print lines the caller excluded
  if (flags.follow && flags.idle !== undefined) throw new UsageError('--follow and --idle: use them in separate calls');
  if (flags.follow && flags.history)
    throw new UsageError('--follow prints changes from now on; --history cannot follow');
}
const INTERRUPTS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The event a run's first sighting is. */
function firstEvent(rec: JobRecord): JobEvent {
  if (rec.status === 'QUEUED') return 'queued';
  return isTerminal(rec.status) ? 'ended' : 'started';
}

/** The event of one run going from one state to another. */
function transition(from: string, to: string): JobEvent {
  if (isTerminal(to)) return 'ended';
  if (from === 'RUNNING' && to === 'PAUSED') return 'paused';
  if (from === 'PAUSED' && to === 'RUNNING') return 'resumed';
  return 'running';
}

/** The job a file in jobs/ is about: <name>.json, or .<name>@<id>.end; null for temp files. */
export function nameOfJobFile(file: string): string | null {
  if (file.endsWith('.json') && !file.startsWith('.')) return file.slice(0, -5);
  if (file.startsWith('.') && file.endsWith('.end') && file.includes('@')) return file.slice(1, file.indexOf('@'));
  return null;
}

/** What a follower knows: the last state of each selected job, and what is left to read. */
interface Follower {
  home: Home;
  opts: FollowOptions;
  selects: (name: string) => boolean;
  /** names followed as NAME@ID: only those runs of them, never the runs that replace them */
  pinned: Map<string, Set<string>>;
  /** the last record seen, by name (or name@id for a pinned run) */
  seen: Map<string, JobRecord>;
  dirty: Set<string>;
  fullScan: boolean;
  warned: Set<string>;
  /** records removed by the last check (for --until-done when nothing is left) */
  removed: JobRecord[];
  /** a job was removed before its end was seen: --until-done exits 3, as bgmon-wait does */
  lostEnd: boolean;
}

function emit(f: Follower, event: JobEvent, rec: JobRecord): void {
  if (f.opts.filter && !f.opts.filter.has(rec.status)) return;
  out(JSON.stringify({ event, ...rec }) + '\n');
}

/** What a record is followed as: its name, or for a pinned run, name@id. */
const keyOf = (f: Follower, rec: JobRecord) => (f.pinned.has(rec.name) ? `${rec.name}@${rec.id}` : rec.name);

/** The keys a look at these names may find. */
const keysOf = (f: Follower, names: string[]) =>
  names.flatMap((n) => (f.pinned.has(n) ? [...f.pinned.get(n)!].map((id) => `${n}@${id}`) : [n]));

/** Prints what changed for one job since it was last seen; nothing when its id and status did not. */
function observe(f: Follower, rec: JobRecord, initial: boolean): void {
  const key = keyOf(f, rec);
  const last = f.seen.get(key);
  f.seen.set(key, rec);
  if (!last) return emit(f, initial ? 'current' : firstEvent(rec), rec);
  if (last.id !== rec.id) {
    // rerun between two looks: the replaced run's end is in its kept record; with none, the run
    // was removed (bgmon-rm, then a new start) and that is said, not silently skipped
    const old = readRun(f.home, last.name, last.id);
    if (!old || !isTerminal(old.status)) emit(f, 'removed', last);
    else if (!isTerminal(last.status) || old.status !== last.status) emit(f, 'ended', old);
    return emit(f, firstEvent(rec), rec);
  }
  if (last.status !== rec.status) emit(f, transition(last.status, rec.status), rec);
}

/** Reads the jobs due (all selected ones on a full scan) and prints their changes. */
async function check(f: Follower, initial: boolean): Promise<void> {
  const names = f.fullScan ? listNames(f.home).filter(f.selects) : [...f.dirty].filter(f.selects);
  // pinned runs are looked for even once their name has no record (removed)
  if (f.fullScan) for (const name of f.pinned.keys()) if (!names.includes(name)) names.push(name);
  const asked = new Set(keysOf(f, names));
  if (f.fullScan) for (const key of f.seen.keys()) asked.add(key);
  f.fullScan = false;
  f.dirty.clear();
  const listing = await statusesOf(f.home, names);
  const { corrupt, notes } = listing;
  const records = pinnedRuns(f, names, listing.records);
  const unreadable = new Set(corrupt.map((err) => basename(err.file).replace(/\.json$/, '')));
  for (const line of [...notes, ...corrupt.map((err) => err.message)]) {
    if (!f.warned.has(line)) f.opts.warn(line);
    f.warned.add(line);
  }
  for (const rec of records) observe(f, rec, initial);
  const present = new Set(records.map((r) => keyOf(f, r)));
  f.removed = [];
  for (const key of asked) {
    const last = f.seen.get(key);
    if (!last || present.has(key) || unreadable.has(last.name)) continue;
    f.seen.delete(key);
    f.removed.push(last);
    if (!isTerminal(last.status)) f.lostEnd = true;
    emit(f, 'removed', last);
  }
}

/**
 * The records of the names looked at; for a name followed as NAME@ID, each pinned run: the
 * current record while it is that run, else (rerun meanwhile, or a past run) its kept record.
 */
function pinnedRuns(f: Follower, names: string[], current: JobRecord[]): JobRecord[] {
  if (f.pinned.size === 0) return current;
  const byName = new Map(current.map((r) => [r.name, r]));
  const runs = current.filter((r) => !f.pinned.has(r.name));
  for (const name of names) {
    for (const id of f.pinned.get(name) ?? []) {
      const cur = byName.get(name);
      const rec = cur?.id === id ? cur : readRun(f.home, name, id);
      if (rec) runs.push(rec === cur ? rec : withActivity(rec));
    }
  }
  return runs.sort(oldestFirst);
}

/** --until-done: the exit code once every selected job has ended, else null. */
function doneCode(f: Follower): number | null {
  const recs = [...f.seen.values()];
  let code: number | null;
  if (recs.length === 0) code = f.removed.length > 0 ? waitExitCode(f.removed) : null;
  else code = recs.every((r) => isTerminal(r.status)) ? waitExitCode(recs) : null;
  return code !== null && f.lostEnd ? NOT_FOUND_EXIT : code;
}

/** Marks what the slow re-check reads: every job that is not over (its state lives in /proc). */
function markLive(f: Follower): void {
  for (const rec of f.seen.values()) if (!isTerminal(rec.status)) f.dirty.add(rec.name);
}

function onFileEvent(f: Follower, file: string | null): void {
  const name = file === null ? null : nameOfJobFile(file);
  if (file === null) f.fullScan = true;
  else if (name !== null) f.dirty.add(name);
  else return; // a temp file: its rename into place is the event that matters
  // a queued job may leave the queue when any other job ends
  for (const rec of f.seen.values()) if (rec.status === 'QUEUED') f.dirty.add(rec.name);
}

/**
 * Follows the jobs named by `patterns` (names or globs, re-matched as jobs come and go; every
 * job when empty; NAME@ID, as a record on stdin gives it, one run). Resolves with the exit code:
 * --until-done's, or 128+n on SIGINT/TERM/HUP.
 */
export async function followJobs(home: Home, patterns: string[], opts: FollowOptions): Promise<number> {
  ensureHome(home);
  // a name, glob or run that matches nothing: exit 3; a malformed one: exit 2
  const targets = patterns.length > 0 ? matchTargets(home, patterns) : [];
  const matchers = patterns.filter((p) => !p.includes('@')).map(nameMatcher);
  const byName = (n: string) => matchers.some((m) => m(n));
  const pinned = new Map<string, Set<string>>();
  for (const t of targets) {
    if (t.id !== null && !byName(t.name)) pinned.set(t.name, (pinned.get(t.name) ?? new Set()).add(t.id));
  }
  const f: Follower = {
    home,
    opts,
    selects: (n) => patterns.length === 0 || byName(n) || pinned.has(n),
    pinned,
    seen: new Map(),
    dirty: new Set(),
    fullScan: true,
    warned: new Set(),
    removed: [],
    lostEnd: false,
  };
  // watch first: a change between the first read and the watch would otherwise be missed
  const events: (string | null)[] = [];
  let wake: (() => void) | null = null;
  const watcher = watch(home.jobs, (_type, file) => {
    events.push(file === null ? null : String(file));
    wake?.();
  });
  await check(f, true);
  if (opts.untilDone && f.seen.size === 0) {
    watcher.close();
    throw new NotFoundError('nothing to follow: no job is selected');
  }
  try {
    return await loop(f, events, (w) => (wake = w));
  } finally {
    watcher.close();
  }
}

/** Checks on every file event and every RECHECK_MS until done or interrupted. */
function loop(f: Follower, events: (string | null)[], setWake: (w: (() => void) | null) => void): Promise<number> {
  return new Promise((resolve, reject) => {
    let busy = false;
    let code: number | null = f.opts.untilDone ? doneCode(f) : null;
    const finish = (c: number) => {
      code = c;
      clearInterval(timer);
      setWake(null);
      for (const [sig, handler] of handlers) process.removeListener(sig, handler);
      resolve(c);
    };
    const run = async () => {
      if (busy || code !== null) return;
      busy = true;
      try {
        while (events.length > 0 || f.dirty.size > 0 || f.fullScan) {
          for (const file of events.splice(0)) onFileEvent(f, file);
          await check(f, false);
          const done = f.opts.untilDone ? doneCode(f) : null;
          if (done !== null) return finish(done);
        }
      } catch (err) {
        clearInterval(timer);
        reject(err);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => (markLive(f), void run()), RECHECK_MS);
    const handlers = INTERRUPTS.map((sig) => [sig, () => finish(128 + constants.signals[sig])] as const);
    for (const [sig, handler] of handlers) process.on(sig, handler);
    setWake(() => void run());
    if (code !== null) finish(code);
    else void run();
  });
}
