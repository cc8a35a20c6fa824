import { mkdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { StateError } from './errors';

export interface Home {
  root: string;
  jobs: string;
  logs: string;
  run: string;
}

/**
 * `$BGMON_HOME`, default `~/.bgmon`, always absolute, checked (see checkHome) before any
 * command reads or writes in it.
 */
export function homeFromEnv(env: NodeJS.ProcessEnv = process.env): Home {
  const root = resolve(env.BGMON_HOME || join(homedir(), '.bgmon'));
  const home = { root, jobs: join(root, 'jobs'), logs: join(root, 'logs'), run: join(root, 'run') };
  checkHome(home);
  return home;
}

export const recordPath = (home: Home, name: string) => join(home.jobs, `${name}.json`);
export const logPath = (home: Home, name: string) => join(home.logs, `${name}.log`);
// '@' cannot occur in a name, so a kept log never collides with another job's log.
export const previousLogPath = (home: Home, name: string, id: string) => join(home.logs, `${name}@${id}.log`);
// The supervisor's spare of versions before end files (see end.ts); rm still removes one.
export const sparePath = (home: Home, name: string) => join(home.jobs, `.${name}.end`);
export const stopMarkerPath = (home: Home, name: string) => join(home.run, `${name}.stop`);
export const queuePath = (home: Home, name: string) => join(home.run, `${name}.queued`);

/**
 * Returns false when the home does not exist yet. Refuses a home (or a symlink to one)
 * that belongs to someone else or that others can write to: logs hold secrets, and a
 * directory another user controls could point our writes into their files.
 */
export function checkHome(home: Home): boolean {
  let st;
  try {
    st = statSync(home.root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new StateError(`cannot use BGMON_HOME ${home.root}: ${(err as Error).message}`);
  }
  if (!st.isDirectory()) throw new StateError(`BGMON_HOME ${home.root} is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new StateError(`refusing BGMON_HOME ${home.root}: it belongs to uid ${st.uid}, not to you (uid ${uid})`);
  if (st.mode & 0o022) throw new StateError(`refusing BGMON_HOME ${home.root}: others can write to it (mode ${(st.mode & 0o777).toString(8)}); run chmod 700 on it`);
  return true;
}

/** Creates the home 0700 (whatever the umask) with its folders, after checking an existing one. */
export function ensureHome(home: Home): Home {
  if (!checkHome(home)) mkdirSync(home.root, { recursive: true, mode: 0o700 });
  for (const dir of [home.jobs, home.logs, home.run]) mkdirSync(dir, { recursive: true, mode: 0o700 });
  checkHome(home);
  return home;
}
