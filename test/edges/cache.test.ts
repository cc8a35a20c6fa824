// The records cache (run/records.cache, record-cache.ts): a listing of every job takes a record's
// text from it only while its file's inode, size, mtime and ctime are unchanged, and the file is a
// regular file of one name. The files stay the truth: whatever is done to a record file, or to the
// cache, a listing says exactly what it says without the cache.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  forgeRecord,
  lines,
  listDir,
  NO_SUCH_PID,
  sleep,
  tmpfsUnavailable,
  until,
  withHome,
  withSmallDisk,
  type Result,
  type TestHome,
} from '../helpers';

/** More than CACHE_MIN_NAMES (64): a listing of this many jobs goes through the cache. */
const MANY = 70;
/** Longer than the cache's margin (1 s): files written before it are settled enough to be cached. */
const SETTLE_MS = 1100;

const cachePath = (h: TestHome) => join(h.root, 'run', 'records.cache');
const recordFile = (h: TestHome, name: string) => join(h.root, 'jobs', `${name}.json`);

/** `n` finished records written by hand (old-00, old-01...), then waits until they are settled. */
async function settledRecords(h: TestHome, n = MANY): Promise<void> {
  const ended = new Date().toISOString();
  for (let i = 0; i < n; i++) {
    forgeRecord(h, `old-${String(i).padStart(2, '0')}`, { status: 'SUCCEEDED', exit_code: 0, ended_at: ended });
  }
  await sleep(SETTLE_MS);
}

async function listing(h: TestHome): Promise<Result> {
  const r = await h.run('bgmon-status', ['--json'], { timeoutMs: 20_000 });
  assert.is(r.signal, null, 'bgmon-status hung');
  return r;
}

/** The listing a home gives without any cache (it is removed first, and again after). */
async function listingWithoutCache(h: TestHome): Promise<Result> {
  rmSync(cachePath(h), { force: true });
  const r = await listing(h);
  rmSync(cachePath(h), { force: true });
  return r;
}

const sameListing = (got: Result, want: Result, what: string) => {
  assert.is(got.code, want.code, `${what}: exit code`);
  assert.is(got.stdout, want.stdout, `${what}: records`);
  assert.is(got.stderr, want.stderr, `${what}: complaints`);
};

/** Replaces `from` with `to` inside the cache file, bytes for bytes (same length: the file stays whole). */
function editCache(h: TestHome, from: string, to: string): void {
  assert.is(Buffer.byteLength(from), Buffer.byteLength(to));
  const bytes = readFileSync(cachePath(h)).toString('latin1');
  assert.ok(bytes.includes(from), `the cache holds ${from}`);
  writeFileSync(cachePath(h), Buffer.from(bytes.replace(from, to), 'latin1'));
}

test(
  'a listing through the cache says exactly what the files say: finished, running, queued, corrupt and planted records',
  withHome(async (h) => {
    await settledRecords(h);
    await h.start('real', ['echo', 'done']);
    await until(h, 'real', 'SUCCEEDED');
    const live = await h.start('live', ['sleep', '30']);
    await h.start('waiting', ['true'], ['--after', 'live']);
    writeFileSync(recordFile(h, 'garbage'), 'not a record\n');
    const copy = join(h.dir, 'copy.json');
    writeFileSync(copy, readFileSync(recordFile(h, 'old-00')));
    symlinkSync(copy, recordFile(h, 'linked'));
    await sleep(SETTLE_MS);

    const first = await listing(h);
    assert.ok(existsSync(cachePath(h)), 'a listing of 70 settled records writes the cache');
    const names = lines(first.stdout).map((r) => r.name);
    assert.equal(names.length, MANY + 3, first.stdout);
    assert.ok(names.includes('live') && names.includes('waiting') && names.includes('real'));
    assert.is(first.code, 1, 'two corrupt records');
    sameListing(await listing(h), first, 'read again through the cache');
    sameListing(await listingWithoutCache(h), first, 'read without a cache');
    process.kill(live.pid, 'SIGKILL');
  }),
);

test(
  'a cached text is used only while its file is unchanged: an edit in place, even of the same size and mtime, is seen',
  withHome(async (h) => {
    await settledRecords(h);
    const first = await listing(h);
    assert.is(first.code, 0, first.stderr);
    assert.ok(existsSync(cachePath(h)));
    // the cache is read: a change made in it alone shows (run/ is the user's own, as jobs/ is)
    editCache(
      h,
      '"name":"old-07","id":"forged-old-07","status":"SUCCEEDED"',
      '"name":"old-07","id":"forged-old-07","status":"CANCELLED"',
    );
    const fromCache = lines((await listing(h)).stdout).find((r) => r.name === 'old-07');
    assert.is(fromCache.status, 'CANCELLED', 'the listing took old-07 from the cache');

    // the file changes in place: same inode, same size, its mtime set back (only its ctime moved)
    const file = recordFile(h, 'old-07');
    const before = statSync(file, { bigint: true });
    writeFileSync(file, readFileSync(file, 'utf8').replace('"exit_code":0', '"exit_code":9'));
    const ns = before.mtimeNs;
    execFileSync('touch', [
      '-m',
      '-d',
      `@${ns / 1_000_000_000n}.${String(ns % 1_000_000_000n).padStart(9, '0')}`,
      file,
    ]);
    const after = statSync(file, { bigint: true });
    assert.is(after.ino, before.ino);
    assert.is(after.size, before.size);
    assert.is(after.mtimeNs, before.mtimeNs, 'mtime set back exactly');
    const edited = lines((await listing(h)).stdout).find((r) => r.name === 'old-07');
    assert.is(edited.status, 'SUCCEEDED', 'read from the file, not the cache');
    assert.is(edited.exit_code, 9);
  }),
);

test(
  'a record file that becomes a hard link, a symlink or a FIFO, or goes, is refused or missing through the cache as without it',
  withHome(async (h) => {
    await settledRecords(h);
    assert.is((await listing(h)).code, 0);
    assert.ok(existsSync(cachePath(h)));
    // a second name made for old-01's own file: its inode, size and times are unchanged
    linkSync(recordFile(h, 'old-01'), join(h.dir, 'second-name'));
    // old-02's file replaced by a symlink to a copy of itself
    const copy = join(h.dir, 'copy-02.json');
    writeFileSync(copy, readFileSync(recordFile(h, 'old-02')));
    unlinkSync(recordFile(h, 'old-02'));
    symlinkSync(copy, recordFile(h, 'old-02'));
    // old-03's file replaced by a FIFO
    unlinkSync(recordFile(h, 'old-03'));
    execFileSync('mkfifo', [recordFile(h, 'old-03')]);
    // old-04 removed
    unlinkSync(recordFile(h, 'old-04'));

    const through = await listing(h);
    const names = lines(through.stdout).map((r) => r.name);
    for (const gone of ['old-01', 'old-02', 'old-03', 'old-04']) assert.not.ok(names.includes(gone), gone);
    assert.is(names.length, MANY - 4);
    assert.is(through.code, 1);
    const jobs = join(h.root, 'jobs');
    assert.is(
      through.stderr,
      [
        `bgmon-status: ${jobs}/old-01.json: corrupt record (a hard link (2 names), not read)`,
        `bgmon-status: ${jobs}/old-02.json: corrupt record (a symbolic link, not followed)`,
        `bgmon-status: ${jobs}/old-03.json: corrupt record (not a regular file)`,
        '',
      ].join('\n'),
    );
    sameListing(await listingWithoutCache(h), through, 'without a cache');
  }),
);

test(
  'a record changed less than a second before it was read is not cached',
  withHome(async (h) => {
    await settledRecords(h);
    // the listing must start within the margin of the write; a run slowed past it is made again
    for (let attempt = 0; ; attempt++) {
      rmSync(cachePath(h), { force: true });
      const written = Date.now();
      forgeRecord(h, 'young', { status: 'FAILED', exit_code: 3, ended_at: new Date().toISOString() });
      const r = await listing(h);
      assert.is(r.code, 0, r.stderr);
      if (Date.now() - written >= 1000 && attempt < 5) continue;
      assert.ok(Date.now() - written < 1000, 'five listings in a row took a second: the machine is too slow');
      const cache = readFileSync(cachePath(h), 'latin1');
      assert.ok(cache.includes('"name":"old-00"'), 'settled records are cached');
      assert.not.ok(cache.includes('"name":"young"'), 'a record changed within the margin is not');
      break;
    }
  }),
);

test(
  'a broken, cut or planted cache is no cache: the listing is the same, nothing is written through a link, nothing hangs',
  withHome(async (h) => {
    await settledRecords(h);
    const want = await listingWithoutCache(h);
    assert.is(want.code, 0, want.stderr);
    await listing(h);
    const whole = readFileSync(cachePath(h));
    const elsewhere = join(h.dir, 'elsewhere');
    writeFileSync(elsewhere, whole);
    const plants: [string, () => void][] = [
      ['garbage', () => writeFileSync(cachePath(h), 'garbage\n')],
      ['empty', () => writeFileSync(cachePath(h), '')],
      ['cut in the keys', () => writeFileSync(cachePath(h), whole.subarray(0, 100))],
      ['cut in a record', () => writeFileSync(cachePath(h), whole.subarray(0, whole.length - 200))],
      [
        'another version',
        () => writeFileSync(cachePath(h), Buffer.concat([Buffer.from('bgmon-rcache-v9\n'), whole.subarray(16)])),
      ],
      ['a symlink', () => symlinkSync(elsewhere, cachePath(h))],
      ['a hard link', () => linkSync(elsewhere, cachePath(h))],
      ['a FIFO', () => execFileSync('mkfifo', [cachePath(h)])],
      ['a directory', () => mkdirSync(cachePath(h))],
    ];
    for (const [what, plant] of plants) {
      rmSync(cachePath(h), { recursive: true, force: true });
      plant();
      sameListing(await listing(h), want, what);
      sameListing(await listing(h), want, `${what}, read again`);
    }
    assert.ok(readFileSync(elsewhere).equals(whole), 'written through a link planted at the cache');
    rmSync(cachePath(h), { recursive: true, force: true });
  }),
);

test(
  'a cache text that is not a valid record, under a key that matches, is passed over for the file',
  withHome(async (h) => {
    await settledRecords(h);
    const want = await listingWithoutCache(h);
    await listing(h);
    editCache(h, '"name":"old-05","id":"forged-old-05"', '"name":"old-05","id":["forged-old5"]');
    sameListing(await listing(h), want, 'old-05 cached as an invalid record');
  }),
);

test(
  'a rewrite keeps the entries still true of their files and takes in the changed ones',
  withHome(async (h) => {
    await settledRecords(h, 100);
    assert.is((await listing(h)).code, 0);
    // old-99's entry marked in the cache alone: it shows for as long as that entry is kept
    editCache(
      h,
      '"name":"old-99","id":"forged-old-99","status":"SUCCEEDED"',
      '"name":"old-99","id":"forged-old-99","status":"CANCELLED"',
    );
    // 64 records replaced as bgmon replaces them (a new file renamed over the old one)
    for (let i = 0; i < 64; i++) {
      const name = `old-${String(i).padStart(2, '0')}`;
      const tmp = join(h.root, 'jobs', `.${name}.1.1.tmp`);
      writeFileSync(tmp, readFileSync(recordFile(h, name), 'utf8').replace('"exit_code":0', '"exit_code":4'));
      renameSync(tmp, recordFile(h, name));
    }
    await sleep(SETTLE_MS);
    const before = statSync(cachePath(h), { bigint: true }).ino;
    const rewriting = lines((await listing(h)).stdout);
    assert.is.not(statSync(cachePath(h), { bigint: true }).ino, before, 'the cache was written again');
    const again = lines((await listing(h)).stdout);
    for (const recs of [rewriting, again]) {
      assert.is(recs.length, 100);
      assert.is(recs.filter((r) => r.exit_code === 4).length, 64, 'the replaced records');
      assert.is(recs.find((r) => r.name === 'old-99').status, 'CANCELLED', "old-99's entry was kept");
      assert.is(recs.filter((r) => r.status === 'SUCCEEDED').length, 99);
    }
  }),
);

test(
  'no cache for fewer than 64 jobs',
  withHome(async (h) => {
    await settledRecords(h, 63);
    const r = await listing(h);
    assert.is(lines(r.stdout).length, 63);
    assert.not.ok(existsSync(cachePath(h)));
  }),
);

test(
  'the temp file of a killed cache writer goes with the next rewrite; a live writer keeps its own',
  withHome(async (h) => {
    await settledRecords(h);
    const run = join(h.root, 'run');
    const dead = join(run, `.records.cache.${NO_SUCH_PID}.1.tmp`);
    const live = join(run, `.records.cache.${process.pid}.1.tmp`);
    writeFileSync(dead, 'half a cache');
    writeFileSync(live, 'half a cache');
    assert.is((await listing(h)).code, 0);
    assert.ok(existsSync(cachePath(h)));
    assert.not.ok(existsSync(dead), "a killed writer's temp file is left");
    assert.ok(existsSync(live), "a live writer's temp file was removed");
    unlinkSync(live);
  }),
);

const noTmpfs = tmpfsUnavailable();
(noTmpfs === null ? test : test.skip)(
  `a full disk: the cache is not written, the listing is whole, no temp file is left${noTmpfs ? ` (SKIPPED: ${noTmpfs})` : ''}`,
  withHome(async (h) => {
    await withSmallDisk(h, '2m', async (mnt, env) => {
      const root = env.BGMON_HOME;
      const jobs = join(root, 'jobs');
      for (const dir of [root, jobs, join(root, 'logs'), join(root, 'run')]) mkdirSync(dir, { mode: 0o700 });
      // records like settledRecords' (forgeRecord writes into h.root, not this disk)
      const template = forgeRecord(h, 'template', {
        status: 'SUCCEEDED',
        exit_code: 0,
        ended_at: new Date().toISOString(),
      });
      for (let i = 0; i < MANY; i++) {
        const name = `full-${String(i).padStart(2, '0')}`;
        const rec = { ...template, name, id: `forged-${name}`, log: join(root, 'logs', `${name}.log`) };
        writeFileSync(join(jobs, `${name}.json`), JSON.stringify(rec) + '\n', { mode: 0o600 });
      }
      // fill what is left of the disk
      const filler = join(mnt, 'filler');
      try {
        execFileSync('sh', ['-c', `cat /dev/zero > ${filler}`], { stdio: 'ignore' });
      } catch {}
      await sleep(SETTLE_MS);
      const r = await h.run('bgmon-status', ['--json'], { env });
      assert.is(r.code, 0, r.stderr);
      assert.is(lines(r.stdout).length, MANY);
      assert.equal(listDir(join(root, 'run')), [], 'nothing is left in run/');
      renameSync(filler, join(mnt, 'filler2'));
    });
  }),
);

test.run();
