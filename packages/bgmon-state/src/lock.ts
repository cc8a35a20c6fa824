import { lstatSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Server } from 'node:net';
import { StateError } from './errors';
import { isNoSpace, noSpaceError, readOwnFile } from './fsutil';
import type { Home } from './paths';
import { bootId, isSameProcess, readStat } from './proc';
import { hashHex } from './random';
import { sleep } from './sleep';

/*
 * A per-name lock, held for milliseconds by whoever changes a name's record (start, the queue,
 * stop of a QUEUED job, rm). Fast path: run/<name>.lock created as a symlink whose target is
 * the holder's "pid starttime bootid". symlink(2) is exclusive and atomic with its content,
 * never follows anything, and needs no data block (so rm can lock on a full disk to free
 * space). A regular file holding the same line (the older form) is honoured as well.
 * A holder that died (SIGKILL) leaves the lock behind; it is recognised as stale by its
 * identity in /proc and removed by one breaker at a time, under an abstract unix socket that
 * the kernel releases when its holder exits, so two breakers can never remove a live lock.
 * A live holder that keeps the lock for HOLDER_STUCK_MS (stopped, hung) is not waited for
 * forever: the waiter gives up with a LockBusyError naming the lock and its holder.
 */

export interface Lock {
  path: string;
}

// A lock file left empty this long lost its writer between create and write (older form).
const EMPTY_LOCK_STALE_MS = 2000;
// Holders keep a lock for milliseconds; one that keeps it this long is stuck. Generous on purpose:
// a loaded machine can take a second or more to spawn a supervisor under the lock.
const HOLDER_STUCK_MS = 8000;

/** The name's lock stayed with one live holder for HOLDER_STUCK_MS: exit 1, naming the lock. */
export class LockBusyError extends StateError {
  constructor(
    readonly path: string,
    holder: string,
  ) {
    super(
      `gave up waiting for the lock ${path}: ${holder} has held it for over ${HOLDER_STUCK_MS / 1000}s; end that ` +
        `process or remove the file if it is stuck`,
    );
  }
}

let identity: string | undefined;
function holderIdentity(): string {
  identity ??= `${process.pid} ${readStat(process.pid)!.starttime} ${bootId()}`;
  return identity;
}

function tryCreate(path: string, retry = true): boolean {
  try {
    symlinkSync(holderIdentity(), path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'ENOENT' && retry) {
      // a home made before run/ existed (or by hand): run/ is ours to create, like ensureHome does
      mkdirSync(dirname(path), { mode: 0o700 });
      return tryCreate(path, false);
    }
    throw isNoSpace(err) ? noSpaceError(path, err) : err;
  }
}

type Holder =
  | { pid: number; starttime: number; boot: string }
  | 'gone'
  | 'unwritten'
  | 'abandoned'
  | { foreign: string };

/** Who holds the lock at path, read without following anything. */
function readHolder(path: string): Holder {
  let text: string;
  let st;
  try {
    st = lstatSync(path);
    if (st.isSymbolicLink()) text = readlinkSync(path, 'latin1');
    else if (!st.isFile()) return { foreign: st.isDirectory() ? 'a directory' : 'not a regular file' };
    else if (st.nlink !== 1) return { foreign: `a hard link (${st.nlink} names)` };
    else if (st.size === 0 || (text = readOwnFile(path)) === '' || !/\n$/.test(text)) {
      // the older form: created, then written; empty or partial means its writer is mid-write or died
      return Date.now() - st.mtimeMs > EMPTY_LOCK_STALE_MS ? 'abandoned' : 'unwritten';
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // released meanwhile, or replaced between lstat and open: just look again
    if (code === 'ENOENT' || (st?.isFile() && code === 'ENOTOWNFILE')) return 'gone';
    return {
      foreign: code === 'ENOTOWNFILE' ? (err as Error).message : `unreadable (${code ?? (err as Error).message})`,
    };
  }
  const m = /^(\d+) (\d+) (\S+)\n?$/.exec(text);
  if (!m) return { foreign: `a symlink to ${JSON.stringify(text.slice(0, 80))}, not a lock holder` };
  return { pid: Number(m[1]), starttime: Number(m[2]), boot: m[3] };
}

const isStale = (h: Holder) =>
  h === 'abandoned' || (typeof h === 'object' && 'pid' in h && !isSameProcess(h.pid, h.starttime, h.boot));

/** The breakers' lock: binding an abstract socket is exclusive and dies with its holder. */
async function bindExclusive(key: string, path: string): Promise<Server> {
  const { createServer } = require('node:net') as typeof import('node:net');
  const deadline = Date.now() + HOLDER_STUCK_MS;
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
      server.listen(`\0bgmon-${key}`, () => resolve(true));
    });
    if (bound) return server;
    if (Date.now() > deadline) throw new LockBusyError(path, 'another command breaking a stale lock');
    await sleep(delay);
  }
}

async function breakStale(home: Home, name: string, path: string): Promise<void> {
  const breaker = await bindExclusive(hashHex(`${home.root}\0${name}`), path);
  try {
    // checked again under the breakers' lock: the file may now be a live holder's
    if (isStale(readHolder(path))) unlinkSync(path);
  } catch {
    // already gone
  } finally {
    breaker.close();
  }
}

function describe(holder: Holder): string {
  if (typeof holder !== 'object' || !('pid' in holder)) return 'a command that has not finished creating it';
  return `pid ${holder.pid}${readStat(holder.pid)?.state === 'T' ? ' (stopped: SIGSTOP or SIGTSTP)' : ''}`;
}

/**
 * Waits for the name's lock (holders keep it for milliseconds). Something at the lock path
 * that is no lock (a directory, a FIFO, a symlink to a path) is an error at once; a live
 * holder that keeps it HOLDER_STUCK_MS is given up on (LockBusyError). The wait restarts
 * whenever the lock changes hands, so a long line of short holders is waited through.
 */
export async function lock(home: Home, name: string): Promise<Lock> {
  const path = join(home.run, `${name}.lock`);
  let holderKey = '';
  let since = Date.now();
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (tryCreate(path)) return { path };
    const holder = readHolder(path);
    if (holder === 'gone') continue;
    if (typeof holder === 'object' && 'foreign' in holder) {
      throw new StateError(
        `${path} is not a bgmon lock (${holder.foreign}); remove it if no bgmon command is working on job ${name}`,
      );
    }
    if (isStale(holder)) {
      await breakStale(home, name, path);
      continue;
    }
    const key = typeof holder === 'object' ? `${holder.pid} ${holder.starttime}` : holder;
    if (key !== holderKey) [holderKey, since] = [key, Date.now()];
    else if (Date.now() - since > HOLDER_STUCK_MS) throw new LockBusyError(path, describe(holder));
    await sleep(delay);
  }
}

export function unlock(held: Lock): void {
  try {
    unlinkSync(held.path);
  } catch {}
}

/** The name's lock if it is free now, else null: for work that may be left to the next reader. */
export function tryLock(home: Home, name: string): Lock | null {
  const path = join(home.run, `${name}.lock`);
  try {
    return tryCreate(path) ? { path } : null;
  } catch {
    return null; // no room, or no run/: the work is left to the next reader
  }
}

/** The name's lock is held by a live process (or one still creating it): waiting would be for it. */
export function lockHeldByLive(home: Home, name: string): boolean {
  const holder = readHolder(join(home.run, `${name}.lock`));
  return holder !== 'gone' && !isStale(holder);
}

/** Runs fn holding the name's lock, and releases it whatever happens. */
export async function withLock<T>(home: Home, name: string, fn: () => T | Promise<T>): Promise<T> {
  const held = await lock(home, name);
  try {
    return await fn();
  } finally {
    unlock(held);
  }
}
