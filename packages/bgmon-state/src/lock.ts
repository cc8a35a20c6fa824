import type { Server } from 'node:net';
import { hashHex } from './random';
import type { Home } from './paths';

/**
 * A per-name lock held by binding an abstract unix socket: binding is exclusive, and the kernel
 * releases it when the holder exits, even by SIGKILL, so a crashed bgmon-start never leaves a
 * stale lock behind. (Linux-only, like the rest of bgmon.)
 */
export async function tryLock(home: Home, name: string): Promise<Server | null> {
  // required here, not at the top: only commands that take a lock pay for loading it
  const { createServer } = require('node:net') as typeof import('node:net');
  const key = hashHex(`${home.root}\0${name}`);
  const server = createServer();
  return new Promise((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => (err.code === 'EADDRINUSE' ? resolve(null) : reject(err)));
    server.listen(`\0bgmon-${key}`, () => {
      server.unref();
      resolve(server);
    });
  });
}

/** Waits for the lock (holders keep it for milliseconds). */
export async function lock(home: Home, name: string): Promise<Server> {
  for (let delay = 2; ; delay = Math.min(delay * 2, 50)) {
    const held = await tryLock(home, name);
    if (held) return held;
    await new Promise((r) => setTimeout(r, delay));
  }
}

export function unlock(server: Server): void {
  server.close();
}
