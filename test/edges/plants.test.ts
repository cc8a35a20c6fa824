// Files planted in the home (FIFOs, hard links, directories) at a run's kept log, spare, end file and
// log, found by the second adversarial round (breaker2): never written through, never a hang.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lines, sleep, slowTest, until, untilGone, withHome, type TestHome } from '../helpers';

test(
  'bgmon-tail NAME@ID of a kept log that is a FIFO or a directory returns at once, printing nothing but why',
  withHome(async (h) => {
    const old = await h.start('k', ['echo', 'OLD']);
    await until(h, 'k', 'SUCCEEDED');
    await h.start('k', ['echo', 'NEW']);
    const kept = join(h.root, 'logs', `k@${old.id}.log`);
    for (const plant of [() => execFileSync('mkfifo', [kept]), () => mkdirSync(kept)]) {
      rmSync(kept, { recursive: true, force: true });
      plant();
      const r = await h.run('bgmon-tail', [`k@${old.id}`], { timeoutMs: 10_000 });
      assert.is(r.signal, null, 'bgmon-tail hung');
      assert.is(r.code, 1, r.stderr);
      assert.is(r.stdout, '');
      assert.is(r.stderr, `bgmon-tail: k: its log is not a regular file, not read: ${kept}\n`);
    }
  }),
);

/**
 * Plants something at one of a run's files while it runs, and returns its record once the
 * supervisor (and its fold) is gone: a fold blocked on a FIFO never ends.
 */
async function plantDuringRun(h: TestHome, name: string, file: string, plant: (path: string) => void): Promise<any> {
  const rec = await h.start(name, ['sleep', '0.5']);
  const path = join(h.root, 'jobs', `.${name}@${rec.id}.${file}`);
  unlinkSync(path);
  plant(path);
  await untilGone([rec.pid, rec.sup_pid], 'the job and its supervisor', 30_000);
  const status = await h.run('bgmon-status', [name, '--json'], { timeoutMs: 10_000 });
  assert.is(status.signal, null, `${name}: bgmon-status hung`);
  assert.is(status.code, 0, status.stderr);
  return lines(status.stdout)[0];
}

test(
  "a hard link or FIFO planted at a run's spare is never written through: the record is written anew",
  withHome(async (h) => {
    const victim = join(h.dir, 'victim');
    writeFileSync(victim, 'VICTIM\n');
    const plants = [(path: string) => linkSync(victim, path), (path: string) => execFileSync('mkfifo', [path])];
    for (const [i, plant] of plants.entries()) {
      assert.is((await plantDuringRun(h, `s${i}`, 'spare', plant)).status, 'SUCCEEDED');
      assert.is(h.record(`s${i}`).status, 'SUCCEEDED');
      assert.is(statSync(join(h.root, 'jobs', `s${i}.json`)).nlink, 1, 'the record is a file of its own');
    }
    assert.is(readFileSync(victim, 'utf8'), 'VICTIM\n', 'the fold wrote through a hard link');
  }),
);

slowTest(
  "a FIFO or directory planted at a run's end file: DEAD, never a hang or an internal error",
  withHome(async (h) => {
    const plants = [(path: string) => execFileSync('mkfifo', [path]), (path: string) => mkdirSync(path)];
    for (const [i, plant] of plants.entries()) {
      assert.is((await plantDuringRun(h, `e${i}`, 'end', plant)).status, 'DEAD');
      const wait = await h.run('bgmon-wait', [`e${i}`], { timeoutMs: 10_000 });
      assert.is(wait.code, 1, wait.stderr);
    }
  }),
);

test(
  "a hard link planted at an ended job's log: its --on-end hook's output never goes through it",
  withHome(async (h) => {
    const victim = join(h.dir, 'victim');
    writeFileSync(victim, 'VICTIM\n');
    const rec = await h.start('hooked', ['sleep', '0.5'], ['--on-end', 'echo HOOK-OUTPUT']);
    const log = join(h.root, 'logs', 'hooked.log');
    unlinkSync(log);
    linkSync(victim, log);
    await until(h, 'hooked', (r) => r.status === 'SUCCEEDED' && typeof r.on_end_ran_at === 'string');
    await untilGone([rec.sup_pid], 'the supervisor');
    await sleep(500); // the hook, detached, has had time to write
    assert.is(readFileSync(victim, 'utf8'), 'VICTIM\n', 'bgmon wrote through a hard link');
  }),
);

test.run();
