import { lstatSync, mkdirSync, readlinkSync, type Stats } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { existsNoFollow } from './fsutil';
import { StateError } from './errors';

export interface Home {
  /** the home's real path: no symlink in it, every directory above it safe (see resolveHome) */
  root: string;
  jobs: string;
  logs: string;
  run: string;
}

/**
 * `$BGMON_HOME`, default `~/.bgmon`, resolved ONCE to its real path and checked (see
 * resolveHome); every command then works on that path only, so a link swapped later
 * redirects nothing.
 */
export function homeFromEnv(env: NodeJS.ProcessEnv = process.env): Home {
  const given = env.BGMON_HOME || join(homedir(), '.bgmon');
  const { root, exists } = resolveHome(given);
  const home = homeAt(root);
  if (exists) checkHome(home, given);
  return home;
}

const homeAt = (root: string): Home => ({
  root,
  jobs: join(root, 'jobs'),
  logs: join(root, 'logs'),
  run: join(root, 'run'),
});

export const recordPath = (home: Home, name: string) => join(home.jobs, `${name}.json`);
export const logPath = (home: Home, name: string) => join(home.logs, `${name}.log`);
// '@' cannot occur in a name, so a kept log never collides with another job's log.
export const previousLogPath = (home: Home, name: string, id: string) => join(home.logs, `${name}@${id}.log`);
// The supervisor's spare of versions before end files (see end.ts); rm still removes one.
export const sparePath = (home: Home, name: string) => join(home.jobs, `.${name}.end`);
export const stopMarkerPath = (home: Home, name: string) => join(home.run, `${name}.stop`);
export const queuePath = (home: Home, name: string) => join(home.run, `${name}.queued`);

const refuse = (given: string, why: string) => new StateError(`refusing BGMON_HOME ${given}: ${why}`);
const myUid = () => process.getuid?.() ?? 0;
const MAX_LINKS = 40;

/**
 * A directory above the home that nobody but root and you can change (as ssh's StrictModes):
 * owned by root or you, and not writable by group or others unless it is sticky (like /tmp),
 * where others cannot rename or remove what is yours.
 */
function checkAncestor(given: string, path: string, st: Stats): void {
  const uid = myUid();
  if (st.uid !== 0 && st.uid !== uid)
    throw refuse(given, `${path} belongs to uid ${st.uid}, who could swap what is inside it`);
  if (st.mode & 0o022 && !(st.mode & 0o1000))
    throw refuse(
      given,
      `others can write to ${path} (mode ${(st.mode & 0o7777).toString(8)}) and could swap what is inside it`,
    );
}

/**
 * Resolves the home path component by component, as the kernel would, and returns its real
 * path (the part that does not exist yet is appended as given). Refuses a symlink that is not
 * yours or root's and any directory on the way that others can change: with those ruled out
 * nobody else can make the real path lead somewhere else later. A symlink of yours (or root's)
 * in a safe directory is followed, so `BGMON_HOME=~/link-to-my-dir` works.
 */
export function resolveHome(given: string): { root: string; exists: boolean } {
  const pending = (given.startsWith('/') ? given : `${process.cwd()}/${given}`).split('/');
  let real = '/';
  let links = 0;
  checkAncestor(given, '/', lstatSync('/'));
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      real = resolve(real, '..'); // real has no symlink in it, so its parent is lexical
      continue;
    }
    const next = join(real, part);
    let st: Stats;
    try {
      st = lstatSync(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT')
        return { root: resolve(next, ...pending.filter(Boolean)), exists: false };
      throw refuse(given, `${next}: ${(err as Error).message}`);
    }
    if (st.isSymbolicLink()) {
      if (st.uid !== 0 && st.uid !== myUid())
        throw refuse(given, `${next} is a symlink owned by uid ${st.uid}, who could point it elsewhere at any time`);
      if (++links > MAX_LINKS) throw refuse(given, 'too many levels of symbolic links');
      const target = readlinkSync(next);
      if (target.startsWith('/')) real = '/';
      pending.unshift(...target.split('/'));
      continue;
    }
    if (!st.isDirectory()) throw refuse(given, `${next} is not a directory`);
    if (pending.some((p) => p !== '' && p !== '.')) checkAncestor(given, next, st);
    real = next;
  }
  return { root: real, exists: true };
}

function checkOwnDir(given: string, path: string, st: Stats): void {
  const uid = myUid();
  if (!st.isDirectory())
    throw refuse(
      given,
      `${path} is not a directory${st.isSymbolicLink() ? ' (a symlink inside the home is not followed)' : ''}`,
    );
  if (st.uid !== uid) throw refuse(given, `${path} belongs to uid ${st.uid}, not to you (uid ${uid})`);
  if (st.mode & 0o022)
    throw refuse(given, `others can write to ${path} (mode ${(st.mode & 0o777).toString(8)}); run chmod 700 on it`);
}

/**
 * The resolved home (and its jobs/, logs/, run/ where they exist) must be real directories of
 * yours that others cannot write: logs hold secrets, and a directory another user controls
 * could point our writes into their files. True when all three are there.
 */
export function checkHome(home: Home, given = home.root): boolean {
  checkOwnDir(given, home.root, lstatSync(home.root));
  let whole = true;
  for (const dir of [home.jobs, home.logs, home.run]) {
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch {
      whole = false;
      continue;
    }
    checkOwnDir(given, dir, st);
  }
  return whole;
}

function mkdirOwn(path: string): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
      throw new StateError(`cannot create ${path}: ${(err as Error).message}`);
  }
}

/**
 * Creates the home 0700 with its folders. Missing parents are created one at a time, then the
 * whole path is resolved again: it must still be exactly the real path we checked (nobody
 * planted a link meanwhile, e.g. in a sticky /tmp). Always resolved and checked again, also for
 * a home homeFromEnv found whole: much may happen in between (`bgmon-start -` reads stdin to its
 * end), and a home removed meanwhile (by its owner, a tmp cleaner) leaves its path to anyone.
 */
export function ensureHome(home: Home): Home {
  const missing: string[] = [];
  for (let p = home.root; !existsNoFollow(p); p = resolve(p, '..')) missing.unshift(p);
  missing.forEach(mkdirOwn);
  const again = resolveHome(home.root);
  if (!again.exists || again.root !== home.root) throw refuse(home.root, 'it changed while it was being created');
  // all three in place and checked: nothing to make (three mkdirs failing with EEXIST cost ~0.4 ms)
  if (checkHome(home)) return home;
  for (const dir of [home.jobs, home.logs, home.run]) mkdirOwn(dir);
  checkHome(home);
  return home;
}
