import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, renameSync, symlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { bootId, readStat } from '../../packages/bgmon-state/src/proc';
import { eventually, homeProcs, until, untilGone, withHome, type TestHome } from '../helpers';

// Review of "Queues fold their runs' ends when idle": a run of a queue keeps its run/<name>.queued
// entry until its end is folded, and every queue pass looks at it meanwhile.

const entryOf = (h: TestHome, name: string) => join(h.root, 'run', `${name}.queued`);

/** Kills a run's supervisor and job (by pid and group), as an OOM killer or `kill -9` would. */
async function killRun(rec: { pid: number; sup_pid: number }): Promise<void> {
  for (const target of [rec.sup_pid, -rec.pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {}
  }
  await untilGone([rec.sup_pid, rec.pid], 'the killed run');
}

/** A plain job whose end makes a queue pass (its supervisor's Node step); waits until it is all gone. */
async function passByAnEnd(h: TestHome, name: string): Promise<void> {
  await h.start(name, ['true']);
  await until(h, name, 'SUCCEEDED');
  await eventually(() => homeProcs(h.root).length === 0, 15_000, 'every process of the home gone');
}

test(
  'a queue run whose supervisor was killed (DEAD) leaves its .queued entry: no pass looks at it for ever',
  withHome(async (h) => {
    // a: started by Node; b: started by a's supervisor (the hand-off), its record file says QUEUED
    await h.start('a', ['sleep', '0.3'], ['--queue', 'q']);
    await h.start('b', ['sleep', '300'], ['--queue', 'q']);
    const b = await until(h, 'b', 'RUNNING');
    await killRun(b);
    assert.is((await h.status('b')).status, 'DEAD');
    await passByAnEnd(h, 'p');
    // old code: both entries stay, and every later end in the home locks and reads b again
    await eventually(() => !existsSync(entryOf(h, 'b')), 10_000, 'b.queued removed');
    assert.not.ok(existsSync(entryOf(h, 'a')), 'a.queued removed (a is folded SUCCEEDED)');
    assert.is(h.record('a').status, 'SUCCEEDED');
    assert.is((await h.status('b')).status, 'DEAD');

    // a run Node started, killed while it runs
    const c = await h.start('c', ['sleep', '300'], ['--queue', 'q2']);
    await killRun(c);
    await passByAnEnd(h, 'p2');
    await eventually(() => !existsSync(entryOf(h, 'c')), 10_000, 'c.queued removed');
    assert.is((await h.status('c')).status, 'DEAD');
  }),
);

test(
  'a queue pass does not wait for the lock of a queue run that is still running',
  withHome(async (h) => {
    await h.start('a', ['sleep', '300'], ['--queue', 'q', '--slots', '2']);
    // a's lock passes from one live holder to another every second (a busy name): a waiter that
    // waits for it waits for ever (lock() restarts its patience whenever the holder changes)
    const holders = [h.spawnOutside('sleep', ['300']), h.spawnOutside('sleep', ['300'])];
    const lockPath = join(h.root, 'run', 'a.lock');
    const hold = (i: number) => {
      const pid = holders[i % 2].pid!;
      const tmp = `${lockPath}.${i}`;
      symlinkSync(`${pid} ${readStat(pid)!.starttime} ${bootId()}`, tmp);
      renameSync(tmp, lockPath);
    };
    let turn = 0;
    hold(turn);
    const rotating = setInterval(() => hold(++turn), 1000);
    try {
      // old code: the pass of this start locks a (RUNNING, its entry kept) and never gets it
      const r = await h.run('bgmon-start', ['--name', 'b', '--queue', 'q', '--', 'sleep', '300'], {
        timeoutMs: 25_000,
      });
      assert.is(r.code, 0, r.stderr);
      assert.is(JSON.parse(r.stdout).status, 'RUNNING');
      assert.is(r.stderr, '');
    } finally {
      clearInterval(rotating);
      try {
        unlinkSync(lockPath);
      } catch {}
    }
  }),
);

test.run();
