// Compatibility: a home as the version before today's (308bef9) left it still works. The files
// in test/fixtures/v1-308bef9/home were written by that version's own binaries: a record its sh
// supervisor folded to SUCCEEDED, a RUNNING one, and a name lock as it wrote them then (a regular
// file "PID STARTTIME BOOTID\n"; locks are symlinks to that text today).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootId, readStat } from 'bgmon-state';
import {
  eventually,
  isAlive,
  lines,
  listDir,
  NO_SUCH_PID,
  ROOT,
  sleep,
  untilGone,
  withHome,
  type TestHome,
} from '../helpers';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'v1-308bef9', 'home');
const OLD_HOME = '/tmp/bgmon-old-home';
const OLD_CWD = '/tmp/bgmon-old';

/** Copies the fixture home into the test's home; paths in records point into it. */
function installOldHome(h: TestHome): void {
  for (const dir of ['', 'jobs', 'logs', 'run']) mkdirSync(join(h.root, dir), { recursive: true, mode: 0o700 });
  for (const dir of ['jobs', 'logs', 'run']) {
    for (const file of listDir(join(FIXTURE, dir))) {
      const to = join(h.root, dir, file);
      if (!file.endsWith('.json')) copyFileSync(join(FIXTURE, dir, file), to);
      else
        writeFileSync(
          to,
          readFileSync(join(FIXTURE, dir, file), 'utf8')
            .split(OLD_HOME)
            .join(h.root)
            .split(`"cwd":"${OLD_CWD}"`)
            .join(`"cwd":"${h.dir}"`),
          { mode: 0o600 },
        );
    }
  }
}

const fixtureRecord = (name: string) => JSON.parse(readFileSync(join(FIXTURE, 'jobs', `${name}.json`), 'utf8'));

/** A process's identity cannot be frozen in a file: the old RUNNING record, pointed at `fields`. */
function pointOldRunning(h: TestHome, fields: Record<string, unknown>): any {
  const rec = { ...h.record('old-running'), ...fields };
  writeFileSync(join(h.root, 'jobs', 'old-running.json'), JSON.stringify(rec) + '\n', { mode: 0o600 });
  return rec;
}

test('the fixtures are what the old version wrote: v1 records, a regular-file lock', () => {
  const done = fixtureRecord('old-done');
  assert.is(done.v, 1);
  assert.is(done.status, 'SUCCEEDED');
  assert.is(done.exit_code, 0);
  assert.is(fixtureRecord('old-running').status, 'RUNNING');
  const lock = join(FIXTURE, 'run', 'old-lock.lock');
  assert.ok(lstatSync(lock).isFile(), 'a regular file, not a symlink');
  assert.match(readFileSync(lock, 'latin1'), /^\d+ \d+ [0-9a-f-]{36}\n$/);
});

test(
  'an old SUCCEEDED record: status, wait and tail read it; rm removes it; start replaces it',
  withHome(async (h) => {
    installOldHome(h);
    const old = fixtureRecord('old-done');
    const status = await h.run('bgmon-status', ['old-done', '--json']);
    assert.is(status.code, 0, status.stderr);
    const [rec] = lines(status.stdout);
    assert.equal([rec.status, rec.exit_code, rec.id, rec.ended_at], ['SUCCEEDED', 0, old.id, old.ended_at]);
    const wait = await h.run('bgmon-wait', ['old-done', '--timeout', '5s']);
    assert.is(wait.code, 0, wait.stderr);
    assert.is(lines(wait.stdout)[0].id, old.id);
    assert.is((await h.run('bgmon-tail', ['old-done'])).stdout, 'done\n');
    const again = await h.start('old-done', ['sh', '-c', 'echo new']);
    assert.is.not(again.id, old.id);
    assert.is(readFileSync(again.previous_log, 'utf8'), 'done\n', "the old run's log is kept");
    assert.is((await h.run('bgmon-wait', ['old-done', '--timeout', '10s'])).code, 0);
    const rm = await h.run('bgmon-rm', ['old-done']);
    assert.is(rm.code, 0, rm.stderr);
    assert.not.ok(existsSync(join(h.root, 'jobs', 'old-done.json')));
  }),
);

test(
  'an old RUNNING record whose process is gone is DEAD: wait exits 1, rm removes it, start replaces it',
  withHome(async (h) => {
    installOldHome(h);
    pointOldRunning(h, { pid: NO_SUCH_PID, sup_pid: NO_SUCH_PID });
    assert.is(lines((await h.run('bgmon-status', ['old-running', '--json'])).stdout)[0].status, 'DEAD');
    const wait = await h.run('bgmon-wait', ['old-running', '--timeout', '5s']);
    assert.is(wait.code, 1);
    assert.is(lines(wait.stdout)[0].status, 'DEAD');
    const started = await h.start('old-running', ['true']);
    assert.is(started.status, 'RUNNING');
    assert.is((await h.run('bgmon-wait', ['old-running', '--timeout', '10s'])).code, 0);
    assert.is((await h.run('bgmon-rm', ['old-running'])).code, 0);
  }),
);

test(
  'an old RUNNING record whose job lives is RUNNING: start and rm refuse it, stop ends it',
  withHome(async (h) => {
    installOldHome(h);
    const id = fixtureRecord('old-running').id;
    // an old job: leader of its own session, carrying its run's marker
    const job = h.spawnOutside('sleep', ['1000'], { detached: true, env: { BGMON_JOB_ID: id } });
    const st = await eventually(() => readStat(job.pid!));
    pointOldRunning(h, { pid: st.pid, starttime: st.starttime, boot_id: bootId(), sup_pid: NO_SUCH_PID });
    assert.is((await h.status('old-running')).status, 'RUNNING');
    const start = await h.run('bgmon-start', ['--name', 'old-running', '--', 'true']);
    assert.is(start.code, 1);
    assert.match(start.stderr, /^bgmon-start: job old-running is RUNNING/);
    const rm = await h.run('bgmon-rm', ['old-running']);
    assert.is(rm.code, 1);
    assert.ok(isAlive(st.pid), 'refusals signal nothing');
    const stop = await h.run('bgmon-stop', ['old-running', '--grace', '5s']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].status, 'STOPPED');
    await untilGone([st.pid], 'the old job');
  }),
);

test(
  'an old-format lock file: a stale one is broken at once, a live one is waited for',
  withHome(async (h) => {
    installOldHome(h);
    const lock = (name: string) => join(h.root, 'run', `${name}.lock`);
    // stale as the old version left it: its holder was SIGKILLed while holding it
    const stale = await h.run('bgmon-start', ['--name', 'old-lock', '--', 'true'], { timeoutMs: 10_000 });
    assert.is(stale.code, 0, stale.stderr);
    assert.ok(stale.ms < 5000, `took ${stale.ms} ms`);
    assert.not.ok(existsSync(lock('old-lock')), 'the stale lock was broken and the new one released');
    // the same format naming a live holder (this runner): respected until it goes
    writeFileSync(lock('held'), `${process.pid} ${readStat(process.pid)!.starttime} ${bootId()}\n`, { mode: 0o600 });
    const waiting = h.run('bgmon-start', ['--name', 'held', '--', 'true']);
    await sleep(600);
    assert.not.ok(existsSync(join(h.root, 'jobs', 'held.json')), 'no record while the old-format lock is held');
    unlinkSync(lock('held'));
    assert.is((await waiting).code, 0);
  }),
);

test.run();
