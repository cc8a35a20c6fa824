import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { StateError } from './errors';
import { readOwnFile, writeFileAtomic } from './fsutil';
import { isValidName } from './names';
import type { Home } from './paths';
import { readRecordFile, type JobRecord } from './record';

/*
 * Run history. When a name is rerun, the record of the run it replaces is kept as
 * history/<name>@<id>.json, beside that run's kept log (logs/<name>@<id>.log), so whatever
 * still refers to the old run (a job queued --after it, NAME@ID) can read its outcome.
 * bgmon-rm removes a name's history with the name. '@' cannot occur in a name, so a file
 * name splits back into name and id at its first '@'.
 */

export const historyDir = (home: Home) => join(home.root, 'history');

// Run ids are ours (see newRunId), but an id read from a record may be forged: it must not
// be able to name a path outside history/.
export const isRunId = (id: unknown): id is string =>
  typeof id === 'string' && /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id);

export const historyPath = (home: Home, name: string, id: string) => join(historyDir(home), `${name}@${id}.json`);

/** Creates history/ (0700) once; refuses anything at that path that is not our own directory. */
function ensureHistoryDir(home: Home): string {
  const dir = historyDir(home);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  const uid = process.getuid?.();
  if (!st.isDirectory() || (uid !== undefined && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new StateError(`refusing ${dir}: not a private directory of yours`);
  }
  return dir;
}

/** Keeps the record of a finished run, written atomically (temp file + rename), mode 0600. */
export function archiveRun(home: Home, rec: JobRecord): void {
  if (!isValidName(rec.name) || !isRunId(rec.id)) {
    throw new StateError(`cannot keep run ${rec.name}@${rec.id}: bad name or id`);
  }
  const dir = ensureHistoryDir(home);
  try {
    writeFileAtomic(historyPath(home, rec.name, rec.id), JSON.stringify(rec) + '\n');
  } catch (err) {
    // the caller must not replace a run whose outcome it could not keep
    const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new StateError(`cannot keep the record of run ${rec.name}@${rec.id} in ${dir}: ${why}`);
  }
}

/** The kept record of one run, or null when there is none (never kept, removed, or unreadable). */
export function readRun(home: Home, name: string, id: string): JobRecord | null {
  if (!isValidName(name) || !isRunId(id)) return null;
  try {
    const rec = readRecordFile(historyPath(home, name, id), name);
    return rec && rec.id === id ? rec : null;
  } catch {
    return null;
  }
}

/** Every history file (kept records and temp files of killed writers), by job name. */
export function historyFilesByName(home: Home): Map<string, string[]> {
  const byName = new Map<string, string[]>();
  let files: string[];
  try {
    files = readdirSync(historyDir(home));
  } catch {
    return byName;
  }
  for (const file of files) {
    const bare = file.startsWith('.') ? file.slice(1) : file;
    const at = bare.indexOf('@');
    if (at <= 0) continue;
    const name = bare.slice(0, at);
    const path = join(historyDir(home), file);
    const list = byName.get(name);
    if (list) list.push(path);
    else byName.set(name, [path]);
  }
  return byName;
}

/*
 * A run's --env values (they may be secrets) are kept apart from its record, in
 * run/<name>@<id>.env (0600, like every file in the home), so that --again can start it exactly
 * again; records carry only the keys (env_keys) and never print a value.
 */
export const envPath = (home: Home, name: string, id: string) => join(home.run, `${name}@${id}.env`);

/** Keeps a run's KEY=VALUE assignments (nothing when there are none). */
export function keepRunEnv(home: Home, name: string, id: string, assignments: string[]): void {
  if (assignments.length === 0) return;
  writeFileAtomic(envPath(home, name, id), JSON.stringify(assignments) + '\n');
}

/** The kept KEY=VALUE assignments of a run; null when they are not kept (or unreadable). */
export function readRunEnv(home: Home, name: string, id: string): string[] | null {
  if (!isValidName(name) || !isRunId(id)) return null;
  try {
    const list = JSON.parse(readOwnFile(envPath(home, name, id)));
    return Array.isArray(list) && list.every((kv) => typeof kv === 'string') ? list : null;
  } catch {
    return null;
  }
}

/** The keys of KEY=VALUE assignments, in order, each once: what a record shows of --env. */
export const envKeys = (assignments: string[]) => [...new Set(assignments.map((kv) => kv.slice(0, kv.indexOf('='))))];
