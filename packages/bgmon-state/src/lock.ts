import { lstatSync, readFileSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { Home } from './paths';
import { bootId, isSameProcess, readStat } from './proc';
import { hashHex } from './random';
import { sleep } from './sleep';

/*
 * A per-name lock, held for milliseconds by whoever changes a name's record (start, the queue,
 * stop of a QUEUED job, rm). Fast path: run/<name>.lock created exclusively, naming the
 * holder's pid, starttime and boot id. A holder that died (SIGKILL) leaves the file behind; it
 * is recognised as stale by its identity in /proc and removed by one breaker at a time, under
 * an abstract unix socket that the kernel releases when its holder exits, so two breakers can
 * never remove a live lock. (Both are Linux-only, like the rest of bgmon.)
 */

export interface Lock {
  path: string;
}

// A lock file left empty this long lost its writer between create and write.
const EMPTY_LOCK_STALE_MS = 2000;

let identity: string | undefined;
function holderIdentity(): string {
  identity ??= `${process.pid} ${readStat(process.pid)!.starttime} ${bootId()}\n`;
  return identity;
}

/*
 * The lock is a symlink whose target is the holder's identity: created atomically with its
 * content (no window where it exists empty) and needing no data block, so a full disk cannot
 * stop a lock. Earlier versions wrote a regular file with the same text; both are read.
 */
function tryCreate(path: string): boolean {
  try {
    symlinkSync(holderIdentity().trimEnd(), path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function readHolder(path: string): string | null {
  try {
    return readlinkSync(path) + '\n';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') return null; // released meanwhile
  }
  try {
    return readFileSync(path, 'latin1'); // a lock file of an earlier version
  } catch {
    return null;
  }
}

function isStale(path: string): boolean {
  const text = readHolder(path);
  if (text === null) return false; // released meanwhile: just try again
  const m = /^(\d+) (\d+) (\S+)\n$/.exec(text);
  if (!m) {
    try {
      return Date.now() - lstatSync(path).mtimeMs > EMPTY_LOCK_STALE_MS;
    } catch {
      return false;
    }
  }
  return !isSameProcess(Number(m[1]), Number(m[2]), m[3]);
}

/** The breakers' lock: binding an abstract socket is exclusive and dies with its holder. */
async function bindExclusive(key: string): Promise<Server> {
  const { createServer } = require('node:net') as typeof import('node:net');
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const server = createServer();
    const bound = await new Promise<boolean>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(false) : reject(err)));
      server.listen(`\0bgmon-${key}`, () => resolve(true));
    });
    if (bound) return server;
    await sleep(delay);
  }
}

async function breakStale(home: Home, name: string, path: string): Promise<void> {
  const breaker = await bindExclusive(hashHex(`${home.root}\0${name}`));
  try {
    // checked again under the breakers' lock: the file may now be a live holder's
    if (isStale(path)) unlinkSync(path);
  } catch {
    // already gone
  } finally {
    breaker.close();
  }
}

/** Waits for the name's lock (holders keep it for milliseconds). */
export async function lock(home: Home, name: string): Promise<Lock> {
  const path = join(home.run, `${name}.lock`);
  for (let delay = 1; ; delay = Math.min(delay * 2, 50)) {
    if (tryCreate(path)) return { path };
    if (isStale(path)) await breakStale(home, name, path);
    else await sleep(delay);
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
  return tryCreate(path) ? { path } : null;
}
