import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { ExecError } from './errors';

// Its own module so that both bgmon-start and the queue (which starts jobs later, when the
// command may be gone) check a command the same way, without importing each other.

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Resolves CMD as execvp would, so a missing command fails here (127) and not inside the job. */
export function resolveExecutable(file: string, pathVar: string | undefined, cwd: string): string {
  if (file.includes('/')) {
    const path = resolve(cwd, file);
    if (isExecutableFile(path)) return path;
    throw new ExecError(existsSync(path) ? `${file}: permission denied or not a file` : `${file}: no such file`);
  }
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    const path = resolve(cwd, dir || '.', file);
    if (isExecutableFile(path)) return path;
  }
  throw new ExecError(`${file}: command not found`);
}
