import { randomHex } from './random';
import { UsageError } from './errors';

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const GLOB_CHARS = /[*?[]/;
// A glob may use only name characters plus the glob syntax, so it can never address a path.
const GLOB = /^[A-Za-z0-9._\-*?[\]!]{1,256}$/;

export function isValidName(name: unknown): name is string {
  return typeof name === 'string' && NAME.test(name);
}

export function assertName(name: string): string {
  if (!isValidName(name))
    throw new UsageError(
      `invalid job name ${JSON.stringify(name)}: use 1-128 of [A-Za-z0-9._-], starting with a letter or digit`,
    );
  return name;
}

export function isGlob(pattern: string): boolean {
  return GLOB_CHARS.test(pattern);
}

/** Validates a name-or-glob argument; returns a matcher. */
export function nameMatcher(pattern: string): (name: string) => boolean {
  if (!isGlob(pattern)) {
    assertName(pattern);
    return (name) => name === pattern;
  }
  const re = GLOB.test(pattern) ? globToRegExp(pattern) : null;
  if (!re) throw new UsageError(`invalid job name or glob ${JSON.stringify(pattern)}`);
  return (name) => re.test(name);
}

/** The glob as a regular expression; null when it is not one (a range out of order: [z-a]). */
function globToRegExp(glob: string): RegExp | null {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) out += '\\[';
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith('!')) body = '^' + body.slice(1);
        out += '[' + body.replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else out += c.replace(/[.\-\]]/g, '\\$&');
  }
  try {
    return new RegExp('^' + out + '$');
  } catch {
    return null;
  }
}

/** A name for a job started without --name: the command's basename plus a short random suffix. */
export function deriveName(cmd: string[], taken: (name: string) => boolean): string {
  const base = (cmd[0] ?? 'job').split('/').pop() ?? 'job';
  const stem =
    base
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/^[^A-Za-z0-9]+/, '')
      .slice(0, 100) || 'job';
  for (;;) {
    const name = `${stem}-${randomHex(6)}`;
    if (!taken(name)) return name;
  }
}
