import { lstatSync } from 'node:fs';
import { NotFoundError, UsageError } from './errors';
import { isGlob, isValidName, nameMatcher } from './names';
import { recordPath, type Home } from './paths';
import { CorruptRecordError, isTerminal, listNames, readRecord, type JobRecord } from './record';
import { historyFilesByName, isRunId, readRun } from './history';
import { listingSource } from './record-cache';
import { isTty } from './fsutil';

// A record line is a few hundred bytes; a longer line is not one of ours.
const MAX_LINE = 1024 * 1024;

/**
 * Reads job names from NDJSON records on stdin. Any bad line rejects the whole input. A record
 * with an `id` selects exactly that run: it is read as NAME@ID (see matchTargets).
 */
export function readNamesFromStdin(input: NodeJS.ReadableStream = process.stdin): Promise<string[]> {
  // loaded only when stdin is read: split2 pulls in node:stream
  const split2 = require('split2') as typeof import('split2');
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    let lineNo = 0;
    let failed = false;
    const fail = (message: string) => {
      if (failed) return;
      failed = true;
      reject(new UsageError(message));
      input.pause();
      (input as any).destroy?.();
    };
    input
      .pipe(split2({ maxLength: MAX_LINE }))
      .on('data', (line: string) => {
        lineNo++;
        if (line.trim() === '') return;
        let rec: any;
        try {
          rec = JSON.parse(line);
        } catch {
          return fail(`stdin line ${lineNo}: not a JSON record`);
        }
        if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
          return fail(`stdin line ${lineNo}: not a JSON object`);
        if (!isValidName(rec.name)) return fail(`stdin line ${lineNo}: no valid "name" field`);
        if (rec.id !== undefined && rec.id !== null && !isRunId(rec.id))
          return fail(`stdin line ${lineNo}: bad "id" field`);
        names.push(rec.id ? `${rec.name}@${rec.id}` : rec.name);
      })
      .on('error', (err: Error) => {
        const tooLong = `line ${lineNo + 1} is longer than ${MAX_LINE} bytes`;
        fail(`stdin: ${/maximum buffer/i.test(err.message) ? tooLong : err.message}`);
      })
      .on('end', () => failed || resolve(names));
  });
}

/**
 * The names/globs a command acts on: its arguments; NDJSON on stdin for `-`; stdin also when
 * there are no arguments and `stdinWhenEmpty` (stop, tail, wait) and stdin is not a terminal.
 */
export async function requestedPatterns(
  args: string[],
  stdinWhenEmpty: boolean,
): Promise<{ patterns: string[]; fromStdin: boolean }> {
  if (args.length === 1 && args[0] === '-') return { patterns: await readNamesFromStdin(), fromStdin: true };
  if (args.includes('-')) throw new UsageError('"-" (read names from stdin) must be the only name');
  if (args.length > 0 || !stdinWhenEmpty) return { patterns: args, fromStdin: false };
  if (isTty(0)) throw new UsageError('no job names given (and stdin is a terminal)');
  return { patterns: await readNamesFromStdin(), fromStdin: true };
}

/** Records as listed: those read, the files that could not be (named on stderr), and notes. */
export interface Listing {
  records: JobRecord[];
  corrupt: CorruptRecordError[];
  /** e.g. queued names that could not be advanced (their lock is stuck), one line each */
  notes: string[];
}

export const oldestFirst = (a: JobRecord, b: JobRecord) => byAge(a, b);
const byAge = (a: JobRecord, b: JobRecord) =>
  a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.name < b.name ? -1 : 1;

/** Reads the records of the given names (all jobs when undefined), oldest first. */
export function loadRecords(home: Home, names?: string[]): Listing {
  const records: JobRecord[] = [];
  const corrupt: CorruptRecordError[] = [];
  const listed = names ?? listNames(home);
  // a listing of every job reads through the records cache (record-cache.ts)
  const source = listingSource(home, names === undefined ? listed.length : 0);
  for (const name of listed) {
    try {
      const rec = source.read(name);
      if (rec) records.push(rec);
    } catch (err) {
      if (err instanceof CorruptRecordError) corrupt.push(err);
      else throw err;
    }
  }
  source.finish();
  records.sort(byAge);
  return { records, corrupt, notes: [] };
}

/** A record file exists (whatever it is: a planted link is still selectable, e.g. by rm). */
function hasRecordFile(home: Home, name: string): boolean {
  try {
    lstatSync(recordPath(home, name));
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves names and globs to existing job names. Every pattern must match a job (else exit 3,
 * before anything is done); patterns are validated first, so bad input is exit 2.
 */
export function matchNames(home: Home, patterns: string[], listAll?: (home: Home) => string[]): string[] {
  const matchers = patterns.map((p) => ({ p, test: nameMatcher(p) }));
  // plain names need no directory listing (which costs with thousands of jobs)
  const all = listAll && patterns.length > 0 ? listAll(home) : patterns.some(isGlob) ? listNames(home) : null;
  const chosen = new Set<string>();
  for (const { p, test } of matchers) {
    const hits = all ? all.filter(test) : hasRecordFile(home, p) ? [p] : [];
    if (hits.length === 0) throw new NotFoundError(`no such job: ${p}`);
    hits.forEach((n) => chosen.add(n));
  }
  return [...chosen];
}

/** One run a command acts on: a job's current run (id null), or the run with that id. */
export interface Target {
  name: string;
  id: string | null;
}

/** Splits NAME@ID (one run) from a name or glob; a bad name or id is a usage error. */
export function parseTarget(pattern: string): Target {
  const at = pattern.indexOf('@');
  if (at < 0) return { name: pattern, id: null };
  const name = pattern.slice(0, at);
  const id = pattern.slice(at + 1);
  if (!isValidName(name) || !isRunId(id))
    throw new UsageError(`invalid run ${JSON.stringify(pattern)}: expected NAME@ID`);
  return { name, id };
}

/** The run a target names: the current record when its id matches (or none is asked), else the kept one. */
export function readTarget(home: Home, target: Target): { record: JobRecord; past: boolean } | null {
  const cur = readRecord(home, target.name);
  if (cur && (target.id === null || cur.id === target.id)) return { record: cur, past: false };
  const kept = target.id === null ? null : readRun(home, target.name, target.id);
  return kept ? { record: kept, past: true } : null;
}

const targetKey = (t: Target) => `${t.name}@${t.id}`;

/**
 * Resolves names, globs and NAME@ID to targets. A NAME@ID of the current run is that name (id
 * kept, so a rerun meanwhile is noticed); of a kept run, that run. Anything that matches no job
 * or run: exit 3, before anything is done.
 */
export function matchTargets(home: Home, patterns: string[], listAll?: (home: Home) => string[]): Target[] {
  const plain = patterns.filter((p) => !p.includes('@'));
  const runs = patterns.filter((p) => p.includes('@')).map(parseTarget);
  const chosen = new Map<string, Target>();
  for (const name of matchNames(home, plain, listAll)) chosen.set(name, { name, id: null });
  for (const t of runs) {
    let run: ReturnType<typeof readTarget> | 'corrupt';
    try {
      run = readTarget(home, t);
    } catch (err) {
      // a corrupt current record: the commands report it as they do for a name
      if (!(err instanceof CorruptRecordError)) throw err;
      run = 'corrupt';
    }
    if (run === null) throw new NotFoundError(`no such run: ${t.name}@${t.id}`);
    // the current run under its name (the id kept: a rerun while acting on it is noticed)
    chosen.set(run !== 'corrupt' && run.past ? targetKey(t) : t.name, t);
  }
  return [...chosen.values()];
}

/**
 * Splits targets into names whose current run is meant (as the name-based commands take them)
 * and the kept records of past runs (ended, acted on by each command in its own way).
 */
export function splitTargets(home: Home, targets: Target[]): { names: string[]; past: JobRecord[] } {
  const names: string[] = [];
  const past: JobRecord[] = [];
  for (const t of targets) {
    let run: ReturnType<typeof readTarget> = null;
    try {
      run = t.id === null ? null : readTarget(home, t);
    } catch (err) {
      if (!(err instanceof CorruptRecordError)) throw err;
    }
    if (run?.past) past.push(run.record);
    else if (!names.includes(t.name)) names.push(t.name);
  }
  return { names, past };
}

/** The kept runs of the given names (every name when undefined), for --history. */
export function loadHistory(home: Home, names?: string[]): JobRecord[] {
  const byName = historyFilesByName(home);
  const runs: JobRecord[] = [];
  for (const name of names ?? byName.keys()) {
    for (const file of byName.get(name) ?? []) {
      const base = file.slice(file.lastIndexOf('/') + 1);
      if (base.startsWith('.') || !base.endsWith('.json')) continue;
      const rec = readRun(home, name, base.slice(name.length + 1, -5));
      if (rec && isTerminal(rec.status)) runs.push(rec);
    }
  }
  return runs.sort(byAge);
}

/** Names that have a current record or kept runs (for globs with --history). */
export function namesWithHistory(home: Home): string[] {
  return [...new Set([...listNames(home), ...historyFilesByName(home).keys()])];
}
