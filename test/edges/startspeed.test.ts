// Start-up speed (issue 9: bgmon-start within 1.3x `node -e 0`): each binary runs its bundle with a
// V8 code cache made by the build. The cache may only ever save time: a missing, stale, truncated,
// corrupt or foreign one must leave every command working exactly as without it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, PACKAGES, ROOT, type Result, slowTest, withHome, type TestHome } from '../helpers';

const LOADER = join(ROOT, 'scripts', 'bundle-loader.cjs');
// every package but the library has a binary of the same name
const BIN_PACKAGES = PACKAGES.filter((p) => p !== 'bgmon-state');
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

test(
  "the job gets the caller's LC_ALL exactly (unset, empty, any value), though setsid and env run in C",
  withHome(async (h) => {
    const show = ['sh', '-c', 'printf "%s|%s|%s" "${LC_ALL-unset}" "${LANG-unset}" "$(env | grep -c ^LC_ALL=)"'];
    const { LC_ALL: _, ...noLcAll } = h.env;
    const cases: [string, string | undefined, string][] = [
      ['unset', undefined, 'unset|C.UTF-8|0'],
      ['empty', '', '|C.UTF-8|1'],
      ['odd', "fr_FR.UTF-8 =x 'y", "fr_FR.UTF-8 =x 'y|C.UTF-8|1"],
    ];
    for (const [name, lcAll, want] of cases) {
      const env = { ...noLcAll, LANG: 'C.UTF-8', ...(lcAll === undefined ? {} : { LC_ALL: lcAll }) };
      const r = spawnSync(process.execPath, [binPath('bgmon-start'), '--name', name, '--', ...show], { env });
      assert.is(r.status, 0, String(r.stderr));
      const rec = JSON.parse(String(r.stdout));
      assert.is((await h.run('bgmon-wait', [name])).code, 0);
      assert.is(readFileSync(rec.log, 'utf8'), want, name);
    }
  }),
);

slowTest(
  'with an LC_ALL of 100 kB, which the chain to the job passes as a word, what the limit check lets through runs',
  withHome(async (h) => {
    // 19 words of 100 kB and a last one of `tail` bytes, and an LC_ALL of 100 kB for the job, given
    // on stdin (node itself would not start with it): about the 2 MiB the kernel takes under the
    // usual 8 MiB stack limit
    const line = (name: string, tail: number) =>
      JSON.stringify({
        name,
        cmd: ['true', ...Array(19).fill('x'.repeat(100_000)), 'y'.repeat(tail)],
        env: { LC_ALL: 'C'.repeat(100_000) },
      });
    const start = (name: string, tail: number) => h.run('bgmon-start', ['-'], { input: `${line(name, tail)}\n` });
    const refused = (r: Result) =>
      r.code === 2 && /^bgmon-start: stdin line 1: the command line and environment take \d+ bytes/.test(r.stderr);
    let [lo, hi] = [0, 127_000];
    for (let probe = 0; hi - lo > 1; probe++) {
      const mid = (lo + hi) >> 1;
      const r = await start(`p${String(probe).padStart(2, '0')}`, mid); // names of one length: the limit counts them
      assert.ok(r.code === 0 || refused(r), `${r.code} ${r.stderr}`);
      if (r.code === 0) lo = mid;
      else hi = mid;
    }
    assert.ok(lo > 0 && hi < 127_000, 'the limit lies between the probes');
    const fits = await start('fit', lo);
    assert.is(fits.code, 0, fits.stderr);
    const wait = await h.run('bgmon-wait', ['fit']);
    assert.is(wait.code, 0, `what the check let through, the kernel ran: ${wait.stdout}`);
    assert.ok(refused(await start('ovr', hi)));
    assert.not.ok(existsSync(join(h.root, 'jobs', 'ovr.json')), 'no record of the refused start');
  }),
);

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
