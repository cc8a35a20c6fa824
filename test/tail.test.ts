import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lastLines } from 'bgmon-state';
import { binPath, eventually, lines, sleep, spawnCollect, until, untilWatching, withHome } from './helpers';

test(
  'tail -n 3 prints exactly the last three lines',
  withHome(async (h) => {
    await h.start('count', ['sh', '-c', 'for i in $(seq 1 100); do echo line $i; done']);
    await until(h, 'count', 'SUCCEEDED');
    const r = await h.run('bgmon-tail', ['count', '-n', '3']);
    assert.is(r.code, 0);
    assert.is(r.stdout, 'line 98\nline 99\nline 100\n');
    assert.is((await h.run('bgmon-tail', ['count'])).stdout.split('\n').length - 1, 10, 'default 10');
    assert.is((await h.run('bgmon-tail', ['count', '-n', '0'])).stdout, '');
    assert.is((await h.run('bgmon-tail', ['count', '-n', 'x'])).code, 2);
  }),
);

test(
  'tail: a log without a trailing newline keeps its last line',
  withHome(async (h) => {
    await h.start('partial', ['printf', 'one\ntwo\nthree']);
    await until(h, 'partial', 'SUCCEEDED');
    assert.is((await h.run('bgmon-tail', ['partial', '-n', '2'])).stdout, 'two\nthree\n');
  }),
);

test(
  'tail -f shows a line written after it started and exits when the job ends',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    await h.start('live', [
      'sh',
      '-c',
      `echo before; while [ ! -e ${go} ]; do sleep 0.05; done; echo after; printf tail-end`,
    ]);
    await eventually(async () => (await h.run('bgmon-tail', ['live'])).stdout === 'before\n');
    const follower = h.run('bgmon-tail', ['live', '-f']);
    await sleep(300);
    writeFileSync(go, '');
    const r = await follower;
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'before\nafter\ntail-end\n');
  }),
);

test(
  'tail: two jobs are prefixed "name | "; --json gives {name,id,line,offset} records',
  withHome(async (h) => {
    await h.start('a', ['sh', '-c', 'echo a1; echo a2']);
    await h.start('b', ['sh', '-c', 'echo b1']);
    await until(h, 'a', 'SUCCEEDED');
    await until(h, 'b', 'SUCCEEDED');
    const r = await h.run('bgmon-tail', ['a', 'b', '-n', '5']);
    assert.is(r.stdout, 'a | a1\na | a2\nb | b1\n');
    const j = await h.run('bgmon-tail', ['a', 'b', '--json']);
    const [a, b] = [(await h.status('a')).id, (await h.status('b')).id];
    assert.equal(lines(j.stdout), [
      { name: 'a', id: a, line: 'a1', offset: 3 },
      { name: 'a', id: a, line: 'a2', offset: 6 },
      { name: 'b', id: b, line: 'b1', offset: 3 },
    ]);
    const f = await h.run('bgmon-tail', ['a', 'b', '-f', '-n', '1']);
    assert.is(f.code, 0, 'follow on ended jobs exits at once');
    assert.is(f.stdout, 'a | a2\nb | b1\n');
  }),
);

test(
  'lastLines reads from the end: long files, long lines, no newline',
  withHome(async (h) => {
    const file = join(h.dir, 'log');
    writeFileSync(file, '');
    for (let i = 0; i < 5000; i++) appendFileSync(file, `row ${i} ${'x'.repeat(i % 300)}\n`);
    const got = lastLines(file, 3).lines.map((b) => b.toString());
    assert.equal(got, [
      `row 4997 ${'x'.repeat(4997 % 300)}`,
      `row 4998 ${'x'.repeat(4998 % 300)}`,
      `row 4999 ${'x'.repeat(4999 % 300)}`,
    ]);
    writeFileSync(file, 'y'.repeat(200_000) + '\nlast');
    assert.equal(
      lastLines(file, 2).lines.map((b) => b.length),
      [200_000, 4],
    );
    assert.equal(lastLines(join(h.dir, 'missing'), 3).lines, []);
  }),
);

test(
  'tail -f on a QUEUED job waits for its log to appear, follows it, and copes with truncation',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const again = join(h.dir, 'again');
    await h.start('first', ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done`]);
    await h.start(
      'second',
      [
        'sh',
        '-c',
        `echo one; echo two; while [ ! -e ${again} ]; do sleep 0.05; done; : > "$0"; echo three`,
        join(h.root, 'logs', 'second.log'),
      ],
      ['--after', 'first'],
    );
    const { child, done: follower } = spawnCollect(process.execPath, [binPath('bgmon-tail'), 'second', '-f'], {
      env: h.env,
    });
    let seen = '';
    child.stdout!.on('data', (c) => (seen += c));
    try {
      await untilWatching(h, 'bgmon-tail'); // following while second is still QUEUED
      writeFileSync(go, '');
      // the log is cut only once the follower itself has printed what came before (another
      // bgmon-tail seeing it proves nothing of a follower that a loaded machine runs late)
      await eventually(
        () => seen === 'one\ntwo\n',
        15_000,
        () => `the follower to print the first lines (seen: ${JSON.stringify(seen)})`,
      );
      writeFileSync(again, '');
      const r = await follower;
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stdout, 'one\ntwo\nthree\n');
    } finally {
      child.kill('SIGKILL');
    }
  }),
);

test(
  'tail -f follows a rerun of a name whose first run ended while another job still runs',
  withHome(async (h) => {
    const done = join(h.dir, 'done');
    await h.start('A', ['sh', '-c', 'echo first-run']);
    await h.start('B', ['sh', '-c', `while [ ! -e ${done} ]; do sleep 0.05; done; echo b-end`]);
    await until(h, 'A', 'SUCCEEDED');
    // each step waits for what the follower has printed, not for a fixed time the load could outlast
    const { child, done: followed } = spawnCollect(
      process.execPath,
      [binPath('bgmon-tail'), 'A', 'B', '-f', '-n', '5'],
      { env: h.env },
    );
    let seen = '';
    child.stdout!.on('data', (c) => (seen += c));
    try {
      await eventually(
        () => seen.includes('A | first-run\n'),
        15_000,
        () => `the first run's line (seen: ${JSON.stringify(seen)})`,
      );
      await h.start('A', ['sh', '-c', 'echo second-run; sleep 0.3; echo second-end']);
      await eventually(
        () => seen.includes('A | second-end\n'),
        15_000,
        () => `the rerun's lines (seen: ${JSON.stringify(seen)})`,
      );
    } finally {
      writeFileSync(done, '');
    }
    const r = await followed;
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'A | first-run\nA | second-run\nA | second-end\nB | b-end\n');
  }),
);

test.run();
