import { lstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { NotFoundError, UsageError } from './errors';
import { isGlob, isValidName, nameMatcher } from './names';
import { recordPath, type Home } from './paths';
import { CorruptRecordError, listNames, readRecord, type JobRecord } from './record';

// A record line is a few hundred bytes; a longer line is not one of ours.
const MAX_LINE = 1024 * 1024;

/** Reads job names from NDJSON records on stdin. Any bad line rejects the whole input. */
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
        if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) return fail(`stdin line ${lineNo}: not a JSON object`);
        if (!isValidName(rec.name)) return fail(`stdin line ${lineNo}: no valid "name" field`);
        names.push(rec.name);
      })
      .on('error', (err: Error) => fail(`stdin: ${/maximum buffer/i.test(err.message) ? `line ${lineNo + 1} is longer than ${MAX_LINE} bytes` : err.message}`))
      .on('end', () => failed || resolve(names));
  });
}

/**
 * The names/globs a command acts on: its arguments; NDJSON on stdin for `-`; stdin also when
 * there are no arguments and `stdinWhenEmpty` (stop, tail, wait) and stdin is not a terminal.
 */
export async function requestedPatterns(args: string[], stdinWhenEmpty: boolean): Promise<{ patterns: string[]; fromStdin: boolean }> {
  if (args.length === 1 && args[0] === '-') return { patterns: await readNamesFromStdin(), fromStdin: true };
  if (args.includes('-')) throw new UsageError('"-" (read names from stdin) must be the only name');
  if (args.length > 0 || !stdinWhenEmpty) return { patterns: args, fromStdin: false };
  if (isatty(0)) throw new UsageError('no job names given (and stdin is a terminal)');
  return { patterns: await readNamesFromStdin(), fromStdin: true };
}

export interface Loaded {
  records: JobRecord[];
  corrupt: CorruptRecordError[];
}

const byAge = (a: JobRecord, b: JobRecord) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.name < b.name ? -1 : 1);

/** Reads the records of the given names (all jobs when undefined), oldest first. */
export function loadRecords(home: Home, names?: string[]): Loaded {
  const records: JobRecord[] = [];
  const corrupt: CorruptRecordError[] = [];
  for (const name of names ?? listNames(home)) {
    try {
      const rec = readRecord(home, name);
      if (rec) records.push(rec);
    } catch (err) {
      if (err instanceof CorruptRecordError) corrupt.push(err);
      else throw err;
    }
  }
  records.sort(byAge);
  return { records, corrupt };
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
export function matchNames(home: Home, patterns: string[]): string[] {
  const matchers = patterns.map((p) => ({ p, test: nameMatcher(p) }));
  // plain names need no directory listing (which costs with thousands of jobs)
  const all = patterns.some(isGlob) ? listNames(home) : null;
  const chosen = new Set<string>();
  for (const { p, test } of matchers) {
    const hits = all ? all.filter(test) : hasRecordFile(home, p) ? [p] : [];
    if (hits.length === 0) throw new NotFoundError(`no such job: ${p}`);
    hits.forEach((n) => chosen.add(n));
  }
  return [...chosen];
}
