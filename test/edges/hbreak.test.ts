import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  closeSync,
  existsSync,
  ftruncateSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { bootId, readStat } from '../../packages/bgmon-state/src/proc';
import {
  countingDir,
  countingJob,
  eventually,
  gatedJob,
  slowTest,
  tmpfsUnavailable,
  until,
  withHome,
  withSmallDisk,
  type TestHome,
} from '../helpers';

// Adversarial review of the queue's hand-off (handoff.ts, start-file.ts, supervisor.sh).

const runDir = (h: TestHome, queue: string, seq: number) => join(h.root, 'run', 'queues', `${queue}.runs`, String(seq));

/** Starts one job in queue q; its record. */
const startIn = (h: TestHome, name: string, cmd: string[], extra: string[] = []) =>
  h.start(name, cmd, ['--queue', 'q', ...extra]);

slowTest(
  'a queued run at a SEQ reused after a lost queue file is not taken for the earlier run its directory held',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    // A holds slot 1 (and the queue's frontier) until the gate opens; B then C run in slot 2,
    // C by hand-off: C's run directory (with its start) stays in place behind A
    await startIn(h, 'A', gatedJob(gate), ['--slots', '2']);
    const gateB = join(h.dir, 'gateB');
    await startIn(h, 'B', gatedJob(gateB));
    const c = await startIn(h, 'C', ['true']);
    assert.is(c.queue_seq, 2);
    assert.is(c.status, 'QUEUED');
    writeFileSync(gateB, '');
    await until(h, 'C', 'SUCCEEDED');
    assert.ok(existsSync(join(runDir(h, 'q', 2), 'start')), 'C was handed off');
    assert.is((await h.run('bgmon-rm', ['C'])).code, 0);
    // the queue file is lost: rebuilt from the records, it numbers D as C was
    rmSync(join(h.root, 'run', 'queues', 'q.json'));
    const d = await startIn(h, 'D', ['sh', '-c', 'echo D ran']);
    assert.is(d.queue_seq, 2, 'D got the SEQ of the removed C');
    assert.is(d.status, 'QUEUED');
    assert.is((await h.status('D')).status, 'QUEUED', 'D waits for A (slots 1 after the rebuild), not DEAD');
    writeFileSync(gate, '');
    const done = await until(h, 'D', 'SUCCEEDED');
    assert.is(done.exit_code, 0);
    assert.is(readFileSync(join(h.root, 'logs', 'D.log'), 'utf8'), 'D ran\n');
  }),
);

/** Fills the file system of `file` to the last byte, then frees `bytes` of it again; its size. */
function fillAllBut(file: string, bytes: number): number {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(4096);
  let size = 0;
  try {
    for (;;) size += writeSync(fd, chunk);
  } catch {}
  ftruncateSync(fd, size - bytes);
  closeSync(fd);
  return size;
}

const noTmpfs = tmpfsUnavailable();
(noTmpfs ? test.skip : slowTest)(
  'a start file left empty by a full disk does not hold a slot and its run for good once space is back',
  withHome(async (h) => {
    await withSmallDisk(h, '2m', async (mnt, env) => {
      const gate = join(h.dir, 'gate');
      const start = async (name: string, cmd: string[]) => {
        const r = await h.run('bgmon-start', ['--name', name, '--queue', 'q', '--', ...cmd], { env });
        assert.is(r.code, 0, r.stderr);
      };
      await start('A', gatedJob(gate));
      await start('B', ['sh', '-c', 'echo B ran']);
      await start('C', ['sh', '-c', 'echo C ran']);
      // one page left: A's supervisor claims B with it, B's job shell then cannot write its start
      const fill = join(mnt, 'fill');
      fillAllBut(fill, 4096);
      writeFileSync(gate, '');
      const dirB = join(env.BGMON_HOME, 'run', 'queues', 'q.runs', '1');
      await eventually(() => existsSync(join(dirB, 'start')), 10_000, "B's start file");
      rmSync(fill);
      const w = await h.run('bgmon-wait', ['B', 'C', '--timeout', '20s'], { env, timeoutMs: 30_000 });
      assert.is(w.code, 0, `B and C ran once space was back: ${w.stdout}${w.stderr}`);
      assert.is(readFileSync(join(env.BGMON_HOME, 'logs', 'B.log'), 'utf8'), 'B ran\n');
      const stop = await h.run('bgmon-stop', ['B'], { env, timeoutMs: 10_000 });
      assert.is(stop.code, 0, stop.stderr);
    });
  }),
);

for (const sub of ['logs', 'jobs']) {
  test(
    `the hand-off writes nothing through a symlink planted in place of the home's ${sub}/ directory`,
    withHome(async (h) => {
      const gate = join(h.dir, 'gate');
      await startIn(h, 'A', gatedJob(gate));
      await startIn(h, 'B', ['sh', '-c', 'echo B ran']);
      const victim = h.subdir('victim');
      renameSync(join(h.root, sub), join(h.root, `${sub}.real`));
      symlinkSync(victim, join(h.root, sub));
      writeFileSync(gate, '');
      // A's supervisor claims B; B's job shell must refuse to put its files through the link
      const dirB = runDir(h, 'q', 1);
      await eventually(() => existsSync(join(dirB, 'start')), 10_000, "B's run decided");
      await eventually(
        () =>
          !existsSync(`/proc/${readFileSync(join(dirB, 'claim'), 'utf8').split(' ')[1]}`) ||
          readdirSync(victim).length > 0,
        10_000,
        "A's supervisor to finish",
      );
      assert.equal(readdirSync(victim), [], 'nothing written into the link’s target');
      unlinkSync(join(h.root, sub));
      renameSync(join(h.root, `${sub}.real`), join(h.root, sub));
      const done = await until(h, 'B', 'SUCCEEDED');
      assert.is(done.exit_code, 0);
      assert.is(readFileSync(join(h.root, 'logs', 'B.log'), 'utf8'), 'B ran\n');
    }),
  );
}

slowTest(
  'a queue file rebuilt from the records gives no slot number twice: --slots 1 then runs one at a time',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    const held = gatedJob(gate);
    await startIn(h, 'X1', held, ['--slots', '2']);
    await startIn(h, 'X2', held);
    // lost: rebuilt from the records, X1 and X2 are listed without the slots their supervisors have
    rmSync(join(h.root, 'run', 'queues', 'q.json'));
    assert.is((await startIn(h, 'Y0', held, ['--slots', '3'])).status, 'RUNNING');
    const dir = countingDir(h);
    const names = ['Y1', 'Y2', 'Y3', 'Y4'];
    for (const name of names) await startIn(h, name, countingJob(dir, 0.3), ['--slots', '1']);
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', names, { timeoutMs: 30_000 });
    assert.is(w.code, 0, w.stderr);
    const seen = readFileSync(join(dir, 'seen'), 'utf8').split('\n').filter(Boolean).map(Number);
    assert.is(seen.length, names.length);
    assert.is(Math.max(...seen), 1, `never more than 1 at once under --slots 1 (saw ${seen})`);
  }),
);

// While a run's start file is partial and a process of the run (its job's shell, paused between
// creating the file and writing its line) is alive, preempt() answers 'started' after 2 s but the
// record still reads QUEUED, so stopOne() -> stopQueued() -> null -> stopOne() looped for as long
// as the shell stayed paused (CPU-bound, seen for 10 minutes).
slowTest(
  'bgmon-stop of a run whose job shell is paused mid-way through writing its start returns',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await startIn(h, 'A', gatedJob(gate));
    const b = await startIn(h, 'B', ['true']);
    const dir = runDir(h, 'q', b.queue_seq);
    // stand-ins: the claiming supervisor, and B's job shell (it carries B's marker) paused
    const claimer = h.spawnOutside('sleep', ['1000']);
    const st = readStat(claimer.pid!)!;
    writeFileSync(join(dir, 'claim'), `1 ${claimer.pid} ${st.starttime} ${bootId()}\n`, { flag: 'wx', mode: 0o600 });
    h.spawnOutside('env', [`BGMON_JOB_ID=${b.id}`, 'sleep', '1000']);
    writeFileSync(join(dir, 'start'), '', { flag: 'wx', mode: 0o600 });
    const stop = await h.run('bgmon-stop', ['B'], { timeoutMs: 20_000 });
    assert.is(stop.signal, null, 'bgmon-stop returned by itself');
    assert.is(stop.code, 1);
    assert.is(stop.stderr, 'bgmon-stop: job B is being started by its queue; try again\n');
    writeFileSync(gate, '');
  }),
);

test.run();
