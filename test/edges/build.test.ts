// The build replaces each bundle by rename: a binary started while it runs (pack.test.ts's
// `pnpm pack` rebuilds in the middle of the suite) loads the old or the new file, never a half one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../helpers';

test('a rebuild puts a changed bundle in place by rename (a new inode), not by rewriting it', () => {
  const bundle = join(ROOT, 'packages', 'bgmon-start', 'dist', 'bgmon-start.js');
  appendFileSync(bundle, '\n// changed by build.test.ts: the build must replace this file\n');
  const before = statSync(bundle).ino;
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], { stdio: 'pipe' });
  assert.is.not(statSync(bundle).ino, before, 'truncated and rewritten in place: a reader could see it empty');
  assert.not.ok(readFileSync(bundle, 'utf8').includes('changed by build.test.ts'), 'rebuilt');
});

test.run();
