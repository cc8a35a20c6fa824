// Start-up speed (issue 9: bgmon-start within 1.3x `node -e 0`): each binary runs its bundle with a
// V8 code cache made by the build. The cache may only ever save time: a missing, stale, truncated,
// corrupt or foreign one must leave every command working exactly as without it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, withHome, type TestHome } from '../helpers';

const LOADER = join(ROOT, 'scripts', 'bundle-loader.cjs');
const BIN_PACKAGES = [
  'bgmon',
  'bgmon-start',
  'bgmon-status',
  'bgmon-stop',
  'bgmon-signal',
  'bgmon-tail',
  'bgmon-wait',
  'bgmon-rm',
];
const bundleOf = (pkgDir: string, bin: string) => join(pkgDir, 'dist', `${bin}.bundle.js`);
const cacheOf = (pkgDir: string, bin: string) => join(pkgDir, 'dist', `${bin}.cache`);

/** What a plain `node` (no NODE_OPTIONS) makes of each bundle's cache: used, rejected or none. */
function cacheStates(bundles: string[]): string[] {
  const { NODE_OPTIONS: _, ...env } = process.env;
  const out = execFileSync(process.execPath, [LOADER, '--code-cache-state', ...bundles], { env, encoding: 'utf8' });
  return out.trim().split('\n');
}

test('every binary has a code cache beside its bundle, and a plain node uses it', () => {
  const bundles = BIN_PACKAGES.map((p) => bundleOf(join(ROOT, 'packages', p), p));
  for (const p of BIN_PACKAGES) {
    assert.ok(existsSync(join(ROOT, 'packages', p, 'dist', `${p}.js`)), `${p}: the loader the shim requires`);
    assert.ok(existsSync(cacheOf(join(ROOT, 'packages', p), p)), `${p}: its code cache`);
  }
  assert.equal(
    cacheStates(bundles),
    bundles.map((b) => `${b} used`),
  );
});

/** A copy of the bgmon-start package (bin, dist) whose cache a test may spoil. */
function startCopy(h: TestHome): { dir: string; bin: string } {
  const dir = h.subdir('bgmon-start');
  for (const part of ['bin', 'dist', 'package.json'])
    cpSync(join(ROOT, 'packages', 'bgmon-start', part), join(dir, part), { recursive: true });
  return { dir, bin: join(dir, 'bin', 'bgmon-start') };
}

/** Flips 4 bytes of the V8 data at `at` (after the 16-byte key): the V8 header's version or flags hash. */
function flipHeader(cache: string, at: number): void {
  const data = readFileSync(cache);
  for (let i = 0; i < 4; i++) data[16 + at + i] ^= 0xff;
  writeFileSync(cache, data);
}

const SPOILED: [string, 'none' | 'rejected', (cache: string, dir: string) => void][] = [
  ['missing', 'none', (cache) => unlinkSync(cache)],
  ['empty', 'none', (cache) => truncateSync(cache, 0)],
  ['only its key', 'none', (cache) => truncateSync(cache, 16)],
  ['truncated', 'rejected', (cache) => truncateSync(cache, Math.floor(readFileSync(cache).length / 2))],
  [
    'garbage after its key',
    'rejected',
    (cache) => writeFileSync(cache, Buffer.concat([readFileSync(cache).subarray(0, 16), Buffer.alloc(50_000, 7)])),
  ],
  ['from another V8 version', 'rejected', (cache) => flipHeader(cache, 4)],
  ['made under other V8 flags', 'rejected', (cache) => flipHeader(cache, 12)],
  // a cache of another bundle: its key is not this bundle's
  ['of another bundle', 'none', (cache) => cpSync(cacheOf(join(ROOT, 'packages', 'bgmon-stop'), 'bgmon-stop'), cache)],
  // the bundle changed after the cache was made (a rebuild half done, a hand edit): its key no longer ends it
  [
    'older than its bundle',
    'none',
    (_cache, dir) =>
      writeFileSync(bundleOf(dir, 'bgmon-start'), readFileSync(bundleOf(dir, 'bgmon-start'), 'utf8') + '// edited\n'),
  ],
];

for (const [what, state, spoil] of SPOILED) {
  test(
    `a cache ${what} is not used, and bgmon-start works exactly as with it`,
    withHome(async (h) => {
      const { dir, bin } = startCopy(h);
      spoil(cacheOf(dir, 'bgmon-start'), dir);
      assert.equal(cacheStates([bundleOf(dir, 'bgmon-start')]), [`${bundleOf(dir, 'bgmon-start')} ${state}`]);
      const version = await h.run(bin, ['--version']);
      assert.equal([version.code, version.stdout, version.stderr], [0, `bgmon-start 0.1.0\n`, '']);
      const usage = await h.run(bin, ['--no-such-flag']);
      assert.equal([usage.code, usage.stdout], [2, '']);
      assert.is(usage.stderr, 'bgmon-start: unknown option --no-such-flag (see --help)\n');
      // a real run, its end folded by the copy's own --job-ended
      const start = await h.run(bin, ['--name', 'spoiled', '--', 'sh', '-c', 'echo ran; exit 3']);
      assert.is(start.code, 0, start.stderr);
      assert.is(start.stderr, '');
      const rec = JSON.parse(start.stdout);
      assert.is(rec.status, 'RUNNING');
      const wait = await h.run('bgmon-wait', ['spoiled']);
      assert.is(wait.code, 3, wait.stderr);
      assert.is(JSON.parse(wait.stdout).exit_code, 3);
      assert.is(readFileSync(rec.log, 'utf8'), 'ran\n');
    }),
  );
}

test('the build makes a cache a plain node uses even when it runs under NODE_OPTIONS', () => {
  // the V8 flags NODE_OPTIONS sets are part of a cache: one made under them is refused by a plain node
  const pkgDir = join(ROOT, 'packages', 'bgmon-rm');
  rmSync(cacheOf(pkgDir, 'bgmon-rm'), { force: true });
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], {
    env: { ...process.env, NODE_OPTIONS: '--max-old-space-size=300' },
    stdio: 'pipe',
  });
  assert.equal(cacheStates([bundleOf(pkgDir, 'bgmon-rm')]), [`${bundleOf(pkgDir, 'bgmon-rm')} used`]);
});

test.run();
