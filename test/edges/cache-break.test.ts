// Attempts to break the records cache's promise (record-cache.ts): whatever happens to the home,
// a listing of every job prints byte for byte what it prints with run/records.cache removed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  binPath,
  forgeRecord,
  lines,
  sleep,
  slowTest,
  spawnCollect,
  until,
  withHome,
  type Result,
  type TestHome,
} from '../helpers';

/** More than CACHE_MIN_NAMES (64): a listing of this many jobs goes through the cache. */
const MANY = 70;
/** Longer than the cache's margin (1 s): files written before it are settled enough to be cached. */
const SETTLE_MS = 1100;
const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;

const cachePath = (h: TestHome) => join(h.root, 'run', 'records.cache');

function settledRecordsNow(h: TestHome, n = MANY): void {
  const ended = new Date().toISOString();
  for (let i = 0; i < n; i++) {
    forgeRecord(h, `old-${String(i).padStart(2, '0')}`, { status: 'SUCCEEDED', exit_code: 0, ended_at: ended });
  }
}

const sameListing = (got: Result, want: Result, what: string) => {
  assert.is(got.code, want.code, `${what}: exit code (${got.stderr.slice(0, 300)})`);
  assert.is(got.stdout, want.stdout, `${what}: records`);
  assert.is(got.stderr, want.stderr, `${what}: complaints`);
};

/** The home handed to uid 65534 (as root), so that permissions bind: a listing runs as that user. */
function giveHomeToNobody(h: TestHome): void {
  chmodSync(h.dir, 0o755);
  const own = (path: string) => chownSync(path, NOBODY, NOBODY);
  own(h.root);
  for (const dir of ['jobs', 'logs', 'run']) {
    own(join(h.root, dir));
    for (const entry of readdirSync(join(h.root, dir))) own(join(h.root, dir, entry));
  }
}

/** bgmon-status --json, as uid 65534 when this runs as root (root passes every permission check). */
async function listingAsOwner(h: TestHome): Promise<Result> {
  const { done } = spawnCollect(
    process.execPath,
    [binPath('bgmon-status'), '--json'],
    { env: h.env, cwd: h.dir, ...(isRoot ? { uid: NOBODY, gid: NOBODY } : {}) },
    { timeoutMs: 20_000 },
  );
  const r = await done;
  assert.is(r.signal, null, 'bgmon-status hung');
  return r;
}

test(
  'a jobs/ folder that can be listed but not searched (chmod a-x): the same complaints through the cache',
  withHome(async (h) => {
    settledRecordsNow(h);
    if (isRoot) giveHomeToNobody(h);
    await sleep(SETTLE_MS);
    const jobs = join(h.root, 'jobs');
    try {
      assert.is((await listingAsOwner(h)).code, 0);
      assert.ok(readdirSync(join(h.root, 'run')).includes('records.cache'), 'the cache was written');
      chmodSync(jobs, 0o600); // readdir works, every lstat and open is EACCES
      const through = await listingAsOwner(h);
      rmSync(cachePath(h), { force: true });
      const without = await listingAsOwner(h);
      assert.is(without.code, 1);
      assert.match(without.stderr, /old-00\.json: corrupt record \(EACCES/);
      sameListing(through, without, 'jobs/ not searchable');
    } finally {
      chmodSync(jobs, 0o700);
    }
  }),
);

async function listing(h: TestHome): Promise<Result> {
  const r = await h.run('bgmon-status', ['--json'], { timeoutMs: 120_000 });
  assert.is(r.signal, null, 'bgmon-status hung');
  return r;
}

const cacheIno = (h: TestHome) => (existsSync(cachePath(h)) ? statSync(cachePath(h)).ino : null);

slowTest(
  'records too large for the cache to be read back (256 MB in all) are not written into it at every listing',
  withHome(async (h) => {
    settledRecordsNow(h);
    // 64 of them with a 4 MB command (a 2 MB argument of quotes, escaped): 260 MB of records
    const big = '"'.repeat(2 * 1024 * 1024);
    for (let i = 0; i < 64; i++) {
      const name = `old-${String(i).padStart(2, '0')}`;
      const file = join(h.root, 'jobs', `${name}.json`);
      const rec = { ...lines(readFileSync(file, 'utf8'))[0], cmd: ['printf', big] };
      writeFileSync(file, JSON.stringify(rec) + '\n', { mode: 0o600 });
    }
    await sleep(SETTLE_MS);
    const first = await listing(h);
    assert.is(first.code, 0, first.stderr);
    const written = cacheIno(h);
    const second = await listing(h);
    assert.is(second.stdout, first.stdout);
    assert.is(cacheIno(h), written, 'the cache was written again: the one written before could not be read');
    assert.ok(written === null || statSync(cachePath(h)).size < 64 * 1024 * 1024, 'the cache holds the large texts');
    rmSync(join(h.root, 'jobs'), { recursive: true, force: true });
  }),
);

/** The home's files (relative paths) that hold `text`. */
function filesHolding(root: string, text: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      const st = lstatSync(path);
      if (st.isDirectory()) walk(path);
      else if (st.isFile() && readFileSync(path, 'latin1').includes(text)) found.push(path.slice(root.length + 1));
    }
  };
  walk(root);
  return found;
}

test(
  'bgmon-rm leaves no copy of a removed record in the cache: a past run (NAME@ID) or the job',
  withHome(async (h) => {
    settledRecordsNow(h);
    const one = await h.start('secret', ['true', 'TOKEN-one']);
    await until(h, 'secret', 'SUCCEEDED');
    await sleep(SETTLE_MS);
    assert.is((await listing(h)).code, 0);
    assert.equal(filesHolding(h.root, 'TOKEN-one'), ['jobs/secret.json', 'run/records.cache'], 'cached');
    await h.start('secret', ['true', 'TOKEN-two']);
    await until(h, 'secret', 'SUCCEEDED');

    const pastRun = await h.run('bgmon-rm', [`secret@${one.id}`]);
    assert.is(pastRun.code, 0, pastRun.stderr);
    assert.equal(filesHolding(h.root, 'TOKEN-one'), [], 'the removed run is still in the home');
    await sleep(SETTLE_MS);
    assert.is((await listing(h)).code, 0);
    assert.equal(filesHolding(h.root, 'TOKEN-two'), ['jobs/secret.json', 'run/records.cache'], 'cached');
    const job = await h.run('bgmon-rm', ['secret']);
    assert.is(job.code, 0, job.stderr);
    assert.equal(filesHolding(h.root, 'TOKEN-two'), [], 'the removed job is still in the home');
  }),
);

test.run();
