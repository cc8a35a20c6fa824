// Review 5: defects found reviewing the day's changes (on-end environment, --after re-check, hand-off).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, sleep, slowTest, until, withHome } from '../helpers';

slowTest(
  'a start that fails before its record is written leaves no kept environment (--env values, the hook copy)',
  withHome(async (h) => {
    // something the launch cannot replace at the log's path: the start fails after planning the run
    mkdirSync(join(h.root, 'logs', 'h.log', 'x'), { recursive: true });
    const r = await h.run(
      'bgmon-start',
      ['--name', 'h', '--env', 'TOKEN=abc', '--on-end', 'true', '--', 'sleep', '5'],
      {
        env: { SECRET_OF_CALLER: 'topsecret' },
      },
    );
    assert.is.not(r.code, 0, r.stderr);
    assert.is(r.stdout, '');
    assert.not.ok(existsSync(join(h.root, 'jobs', 'h.json')), 'no record');
    // no record names the run: nothing could ever remove what it kept
    assert.equal(
      listDir(join(h.root, 'run')).filter((f) => f.includes('h@')),
      [],
    );
  }),
);

/** Files under dir (recursively) whose bytes contain text. */
function filesHolding(dir: string, text: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .filter((f) => readFileSync(f, 'latin1').includes(text));
}

test(
  "bgmon-rm of a queue's handed-off runs leaves no copy of their environment (the run directory's script)",
  withHome(async (h) => {
    assert.is(
      (await h.run('bgmon-start', ['--name', 'S1', '--queue', 'q', '--slots', '1', '--', 'sleep', '1'])).code,
      0,
    );
    // queued behind S1: prepared for the hand-off, its whole environment in its run directory's script
    const s2 = await h.run(
      'bgmon-start',
      ['--name', 'S2', '--queue', 'q', '--env', 'TOKEN=env-secret-5', '--', 'true'],
      {
        env: { CALLER_KEY: 'caller-secret-5' },
      },
    );
    assert.is(s2.code, 0, s2.stderr);
    assert.is((await h.run('bgmon-wait', ['S1', 'S2'])).code, 0);
    const rm = await h.run('bgmon-rm', ['S1', 'S2']);
    assert.is(rm.code, 0, rm.stderr);
    assert.equal(filesHolding(h.root, 'env-secret-5'), []);
    assert.equal(filesHolding(h.root, 'caller-secret-5'), []);
  }),
);

slowTest(
  '--idle: a run whose next --retry attempt is overdue (its supervisor stopped) is silent since it was due',
  withHome(async (h) => {
    const r = await h.run('bgmon-start', ['--name', 'R', '--retry', '1', '--retry-delay', '3s', '--', 'false']);
    assert.is(r.code, 0, r.stderr);
    const waiting = await until(h, 'R', (rec) => rec.next_attempt_at !== null && rec.next_attempt_at !== undefined);
    const sup = JSON.parse(r.stdout).sup_pid;
    process.kill(sup, 'SIGSTOP');
    try {
      await sleep(Math.max(0, Date.parse(waiting.next_attempt_at) - Date.now()) + 1500);
      const idle = await h.run('bgmon-status', ['--idle', '1s', '--json']);
      assert.equal(
        idle.stdout
          .trim()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l).name),
        ['R'],
      );
    } finally {
      process.kill(sup, 'SIGCONT');
    }
  }),
);

test.run();
