import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:net';
import type { Home } from './paths';
import { bootId, isSameProcess, readStat } from './proc';
import { hashHex } from './random';
import { sleep } from './sleep';

/*
 * A per-name lock, held for milliseconds by whoever changes a name's record (start, the queue,
 * stop of a QUEUED job, rm). Fast path: run/<name>.lock created with O_EXCL, holding the
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

function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, holderIdentity());
  } finally {
    closeSync(fd);
  }
  return true;
}

function isStale(path: string): boolean {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch {
    return false; // released meanwhile: just try again
  }
  const m = /^(\d+) (\d+) (\S+)\n$/.exec(text);
  if (!m) {
    try {
      return Date.now() - statSync(path).mtimeMs > EMPTY_LOCK_STALE_MS;
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
