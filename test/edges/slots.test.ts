import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  countingDir,
  countingJob,
  eventually,
  isAlive,
  lines,
  listDir,
  processes,
  queueSpecs,
  slowTest,
  until,
  withHome,
  type TestHome,
} from '../helpers';

// Issue 11, section 2: queues with slots, and `bgmon-start -` (job specs as NDJSON).

/**
 * The jobs of this home whose command runs now: session leaders carrying the home and a run's
 * marker, children of a supervisor (which carries BGMON_JOB but never the marker).
 */
function runningJobs(h: TestHome): { name: string; pid: number; sup_pid: number }[] {
  const found: { name: string; pid: number; sup_pid: number }[] = [];
  for (const st of processes((p) => p.pid === p.session && p.pgrp === p.pid && p.state !== 'Z')) {
    try {
      const env = readFileSync(`/proc/${st.pid}/environ`, 'latin1').split('\0');
      if (!env.includes(`BGMON_HOME=${h.root}`) || !env.some((e) => e.startsWith('BGMON_JOB_ID='))) continue;
      if (!readFileSync(`/proc/${st.ppid}/cmdline`, 'latin1').split('\0').includes('bgmon-supervisor')) continue;
      const name = env.find((e) => e.startsWith('BGMON_JOB='))?.slice(10);
      if (name) found.push({ name, pid: st.pid, sup_pid: st.ppid });
    } catch {}
  }
  return found;
}

/** Submits n counting jobs into queue q of `slots`; kills one supervisor mid-way; drains with bgmon-wait. */
async function drain(h: TestHome, n: number, slots: number, holdS: number): Promise<void> {
  const dir = countingDir(h);
  // the victim, past the first slots, runs its command only once the test opens its gate: it is
  // surely running when its supervisor is killed (a 0.05 s job caught in /proc in time is luck)
  const victimName = `j${Math.floor(n / 2)}`;
  const gate = join(h.dir, 'victim-gate');
  const [sh, c, script] = countingJob(dir, holdS);
  const held = `[ "$BGMON_JOB" != ${victimName} ] || while [ ! -e ${gate} ]; do sleep 0.02; done; ${script}`;
  const sub = await h.run('bgmon-start', ['--slots', String(slots), '-'], {
    input: queueSpecs(n, [sh, c, held]),
  });
  assert.is(sub.code, 0, sub.stderr);
  const printed = lines(sub.stdout);
  assert.equal(
    printed.map((r) => r.name),
    Array.from({ length: n }, (_, i) => `j${i}`),
    'one record each, in order',
  );
  assert.equal(
    printed.map((r) => r.queue_seq),
    printed.map((_, i) => i),
  );
  assert.ok(printed.filter((r) => r.status === 'RUNNING').length <= slots);
  // a supervisor killed mid-way: its job's end is never recorded, nobody advances the queue for it
  // found in /proc, not in the records (a run the queue's hand-off started says QUEUED in its file
  // until folded)
  const victim = await eventually(
    () => runningJobs(h).find((r) => r.name === victimName),
    60_000,
    `${victimName} to run`,
  );
  process.kill(victim.sup_pid, 'SIGKILL');
  await eventually(() => !isAlive(victim.sup_pid), 5000, 'the supervisor to die');
  writeFileSync(gate, ''); // it ends on its own, with nobody left to record it
  const w = await h.run('bgmon-wait', ['j*'], { timeoutMs: 300_000 });
  assert.is(w.code, 1, 'one job is DEAD (its supervisor was killed)');
  const ended = lines(w.stdout);
  assert.is(ended.length, n);
  assert.equal(
    ended.filter((r) => r.status !== 'SUCCEEDED').map((r) => [r.name, r.status]),
    [[victim.name, 'DEAD']],
  );
  const ran = readFileSync(join(dir, 'ran'), 'utf8').trim().split('\n');
  assert.is(ran.length, n, 'every job ran once');
  assert.is(new Set(ran).size, n, 'none ran twice');
  const seen = readFileSync(join(dir, 'seen'), 'utf8').trim().split('\n').map(Number);
  assert.ok(Math.max(...seen) <= slots, `never more than ${slots} at once (saw ${Math.max(...seen)})`);
  assert.is(readFileSync(join(dir, 'cur'), 'utf8').trim(), '0');
}

test(
  'queue: 12 jobs in a queue of 3, a supervisor killed mid-way: never more than 3, all end once',
  withHome(async (h) => {
    await drain(h, 12, 3, 0.3);
  }),
);

slowTest(
  'queue: 100 jobs in a queue of 4, a supervisor killed mid-way: never more than 4, all end once',
  withHome(async (h) => {
    await drain(h, 100, 4, 0.05);
  }),
);

test(
  'queue: first in, first out, one at a time by default; --queue with --after waits for both',
  withHome(async (h) => {
    const order = join(h.dir, 'order');
    const gate = join(h.dir, 'gate');
    await h.start(
      'first',
      ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.05; done; echo first >> ${order}`],
      ['--queue', 'q'],
    );
    await h.start('pre', ['sh', '-c', `while [ ! -e ${gate}2 ]; do sleep 0.05; done`]);
    const waiting = await h.start('w', ['sh', '-c', `echo w >> ${order}`], ['--queue', 'q', '--after', 'pre']);
    assert.is(waiting.status, 'QUEUED');
    for (const n of ['a', 'b', 'c']) {
      const r = await h.start(n, ['sh', '-c', `echo ${n} >> ${order}`], ['--queue', 'q']);
      assert.is(r.status, 'QUEUED', `${n} waits for the slot`);
    }
    writeFileSync(gate, '');
    for (const n of ['a', 'b', 'c']) await until(h, n, 'SUCCEEDED');
    assert.is(h.record('w').status, 'QUEUED', 'w still waits for pre and did not hold up the others');
    writeFileSync(`${gate}2`, '');
    await until(h, 'w', 'SUCCEEDED');
    assert.equal(readFileSync(order, 'utf8').trim().split('\n'), ['first', 'a', 'b', 'c', 'w']);
  }),
);

slowTest(
  'queue: --slots on a later start raises the limit at the next decision',
  withHome(async (h) => {
    for (const n of ['a', 'b', 'c']) await h.start(n, ['sleep', '1000'], ['--queue', 'q']);
    assert.equal(
      ['a', 'b', 'c'].map((n) => h.record(n).status),
      ['RUNNING', 'QUEUED', 'QUEUED'],
    );
    const d = await h.start('d', ['sleep', '1000'], ['--queue', 'q', '--slots', '3']);
    assert.is(d.status, 'QUEUED', 'd is behind b and c');
    assert.equal(
      ['a', 'b', 'c', 'd'].map((n) => h.record(n).status),
      ['RUNNING', 'RUNNING', 'RUNNING', 'QUEUED'],
    );
    assert.is(JSON.parse(readFileSync(join(h.root, 'run', 'queues', 'q.json'), 'utf8')).slots, 3);
    const stop = await h.run('bgmon-stop', ['a', '--grace', '1s']);
    assert.is(stop.code, 0, stop.stderr);
    await until(h, 'd', 'RUNNING');
    // PAUSED counts as running: pausing one frees nothing
    const sig = await h.run('bgmon-signal', ['b', 'STOP']);
    assert.is(sig.code, 0, sig.stderr);
    const e = await h.start('e', ['sleep', '1000'], ['--queue', 'q']);
    assert.is(e.status, 'QUEUED');
    assert.is((await h.status('e')).status, 'QUEUED');
  }),
);

test(
  'queue: bad --queue and --slots are usage errors that write nothing',
  withHome(async (h) => {
    for (const args of [
      ['--queue', '../x'],
      ['--queue', 'a@b'],
      ['--queue', 'q', '--slots', '0'],
      ['--queue', 'q', '--slots', '1.5'],
      ['--queue', 'q', '--slots', 'x'],
      ['--slots', '2'],
    ]) {
      const r = await h.run('bgmon-start', ['--name', 'x', ...args, '--', 'true']);
      assert.is(r.code, 2, args.join(' '));
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(listDir(join(h.root, 'jobs')), []);
  }),
);

slowTest(
  'start -: 200 specs from jq, one process, one record each in order, all end',
  withHome(async (h) => {
    const input = queueSpecs(200, ['sh', '-c', 'exit 0'], { queue: 'w', slots: 8 }).replace(/"j(\d+)"/g, '"shard$1"');
    const r = await h.run('bgmon-start', ['-'], { input, timeoutMs: 60_000 });
    assert.is(r.code, 0, r.stderr);
    const recs = lines(r.stdout);
    assert.equal(
      recs.map((x) => x.name),
      Array.from({ length: 200 }, (_, i) => `shard${i}`),
    );
    assert.ok(recs.every((x) => x.queue === 'w' && ['QUEUED', 'RUNNING'].includes(x.status)));
    assert.ok(recs.filter((x) => x.status === 'RUNNING').length <= 8);
    await until(h, 'shard7', (x) => x.status !== 'QUEUED', 30_000);
    // the rest never run: a QUEUED job stopped is STOPPED at once (draining a queue is the tests above)
    const stop = await h.run('bgmon-stop', ['shard*'], { timeoutMs: 60_000 });
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout).length, 200);
  }),
);

slowTest(
  'start -: the 1000 shards of the README are accepted by one command',
  withHome(async (h) => {
    const input = queueSpecs(1000, ['sh', '-c', 'exit 0'], { queue: 'w' }).replace(/"j(\d+)"/g, '"shard$1"');
    const r = await h.run('bgmon-start', ['-'], { input, timeoutMs: 120_000 });
    assert.is(r.code, 0, r.stderr);
    assert.is(lines(r.stdout).length, 1000);
    const stop = await h.run('bgmon-stop', ['shard*'], { timeoutMs: 120_000 });
    assert.is(stop.code, 0, stop.stderr);
  }),
);

test(
  'start -: an after on an earlier line, env and cwd from the line, defaults from the command line',
  withHome(async (h) => {
    const sub = h.subdir('sub');
    const input = [
      {
        name: 'a',
        cmd: ['sh', '-c', `while [ ! -e ${h.dir}/go ]; do sleep 0.05; done; echo "$X" > out`],
        cwd: sub,
        env: { X: 'from-a' },
      },
      { name: 'b', cmd: ['sh', '-c', 'echo "$X $Y" > out2'], after: 'a', env: { Y: 'y' } },
    ]
      .map((o) => JSON.stringify(o))
      .join('\n');
    const r = await h.run('bgmon-start', ['--env', 'X=dflt', '--cwd', sub, '-'], { input });
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => [x.name, x.status]),
      [
        ['a', 'RUNNING'],
        ['b', 'QUEUED'],
      ],
    );
    writeFileSync(join(h.dir, 'go'), '');
    await until(h, 'b', 'SUCCEEDED');
    assert.is(readFileSync(join(sub, 'out'), 'utf8'), 'from-a\n');
    assert.is(readFileSync(join(sub, 'out2'), 'utf8'), 'dflt y\n');
  }),
);

test(
  'start -: any bad line starts nothing and names its line',
  withHome(async (h) => {
    await h.start('old', ['sleep', '1000']);
    const good = JSON.stringify({ name: 'g', cmd: ['true'] });
    const cases: [string, number, RegExp][] = [
      ['{not json', 2, /line 2: not JSON/],
      ['[1]', 2, /line 2: not a JSON object/],
      [JSON.stringify({ name: 'x', cmd: ['true'], color: 'red' }), 2, /line 2: unknown field "color"/],
      [JSON.stringify({ name: '../x', cmd: ['true'] }), 2, /line 2: invalid job name/],
      [JSON.stringify({ name: 'x', cmd: [] }), 2, /line 2: "cmd"/],
      [JSON.stringify({ name: 'x', cmd: 'true' }), 2, /line 2: "cmd"/],
      [JSON.stringify({ name: 'x', cmd: ['true', 1] }), 2, /line 2: "cmd"/],
      [JSON.stringify({ name: 'g', cmd: ['true'] }), 2, /line 2: job g is named twice/],
      [
        JSON.stringify({ name: 'x', cmd: ['true'], after: ['later'] }) +
          '\n' +
          JSON.stringify({ name: 'later', cmd: ['true'] }),
        2,
        /line 2: "after": no such job later/,
      ],
      [JSON.stringify({ name: 'x', cmd: ['true'], env: { 'A-B': 'v' } }), 2, /line 2: "env"/],
      [JSON.stringify({ name: 'x', cmd: ['true'], queue: 'a/b' }), 2, /line 2: "queue"/],
      [JSON.stringify({ name: 'x', cmd: ['true'], queue: 'q', slots: 0 }), 2, /line 2: "slots"/],
      [JSON.stringify({ name: 'x', cmd: ['true'], in: 'soon' }), 2, /line 2: --in/],
      [JSON.stringify({ name: 'x', cmd: ['no-such-command-here'] }), 127, /line 2: no-such-command-here/],
      [JSON.stringify({ name: 'old', cmd: ['true'] }), 1, /line 2: job old is RUNNING/],
    ];
    for (const [bad, code, message] of cases) {
      const r = await h.run('bgmon-start', ['-'], { input: `${good}\n${bad}\n${good.replace('"g"', '"h"')}\n` });
      assert.is(r.code, code, `${bad}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.match(r.stderr, message);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.equal(
        listDir(join(h.root, 'jobs')).filter((f) => !f.startsWith('.')),
        ['old.json'],
        'nothing started',
      );
      assert.not.ok(existsSync(join(h.root, 'run', 'queues')), 'no queue created');
    }
    const empty = await h.run('bgmon-start', ['-'], { input: '' });
    assert.is(empty.code, 0);
    assert.is(empty.stdout, '');
    const named = await h.run('bgmon-start', ['--name', 'n', '-'], { input: good });
    assert.is(named.code, 2);
  }),
);

test.run();
