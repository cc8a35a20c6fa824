import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binPath, isAlive, lines, sleep, until, untilWatching, withHome } from './helpers';

test(
  'wait: propagates exit codes 0, 3 and 128+signal',
  withHome(async (h) => {
    await h.start('zero', ['sh', '-c', 'sleep 0.3']);
    await h.start('three', ['sh', '-c', 'sleep 0.3; exit 3']);
    const killed = await h.start('killed', ['sleep', '1000']);
    const z = await h.run('bgmon-wait', ['zero']);
    assert.is(z.code, 0);
    assert.is(lines(z.stdout)[0].status, 'SUCCEEDED');
    const t = await h.run('bgmon-wait', ['three']);
    assert.is(t.code, 3);
    assert.is(lines(t.stdout)[0].exit_code, 3);
    const pending = h.run('bgmon-wait', ['killed']);
    await sleep(200);
    process.kill(killed.pid, 'SIGKILL');
    const k = await pending;
    assert.is(k.code, 137);
    assert.is(lines(k.stdout)[0].signal, 'SIGKILL');
  }),
);

test(
  'wait: --timeout 1s on a long job exits 124 with the record as it stands',
  withHome(async (h) => {
    await h.start('long', ['sleep', '1000']);
    const r = await h.run('bgmon-wait', ['long', '--timeout', '1s']);
    assert.is(r.code, 124);
    // returns at its timeout, not at the job's end (1000 s); the time includes node's start-up,
    // which a loaded machine stretches to half a second and more
    assert.ok(r.ms >= 900 && r.ms < 6000, `took ${r.ms} ms`);
    assert.is(lines(r.stdout)[0].status, 'RUNNING');
  }),
);

test(
  'wait: --any returns when the first job ends; several jobs exit 0 only if all succeeded',
  withHome(async (h) => {
    await h.start('fast', ['sh', '-c', 'sleep 0.2']);
    await h.start('slow', ['sleep', '1000']);
    const any = await h.run('bgmon-wait', ['fast', 'slow', '--any']);
    assert.is(any.code, 0);
    assert.equal(
      lines(any.stdout).map((r) => r.name),
      ['fast'],
    );
    await h.start('bad', ['sh', '-c', 'exit 2']);
    const both = await h.run('bgmon-wait', ['fast', 'bad']);
    assert.is(both.code, 1);
    assert.equal(
      lines(both.stdout).map((r) => r.status),
      ['SUCCEEDED', 'FAILED'],
    );
  }),
);

test(
  'wait: unknown name exits 3; bad --timeout exits 2',
  withHome(async (h) => {
    await h.start('x', ['true']);
    const r = await h.run('bgmon-wait', ['nope']);
    assert.is(r.code, 3);
    assert.is(r.stderr, 'bgmon-wait: no such job: nope\n');
    for (const t of ['-1', 'abc', '1e309', '5x'])
      assert.is((await h.run('bgmon-wait', ['x', `--timeout=${t}`])).code, 2, t);
  }),
);

test(
  'wait: a job whose supervisor and process are SIGKILLed returns DEAD, exit 1',
  withHome(async (h) => {
    const rec = await h.start('doomed', ['sleep', '1000']);
    const pending = h.run('bgmon-wait', ['doomed']);
    await sleep(300);
    process.kill(rec.sup_pid, 'SIGKILL');
    process.kill(rec.pid, 'SIGKILL');
    const r = await pending;
    assert.is(r.code, 1);
    assert.is(lines(r.stdout)[0].status, 'DEAD');
    assert.ok(!isAlive(rec.pid));
  }),
);

test(
  'wait A && start B chains in a real shell',
  withHome(async (h) => {
    await h.start('A', ['sh', '-c', 'sleep 0.3; echo a-done']);
    const marker = join(h.dir, 'order');
    writeFileSync(marker, '');
    const node = process.execPath;
    const wait = `"${node}" "${binPath('bgmon-wait')}" A >/dev/null`;
    const start = `"${node}" "${binPath('bgmon-start')}" --name B -- sh -c 'echo b-ran' >/dev/null`;
    const script = `${wait} && ${start} && echo chained`;
    const r = await h.run('/bin/sh', ['-c', script]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stdout, 'chained\n');
    const b = await until(h, 'B', 'SUCCEEDED');
    assert.ok(b.started_at >= (await h.status('A')).ended_at, 'B started after A ended');
    await h.start('F', ['sh', '-c', 'exit 1']);
    const f = await h.run('/bin/sh', [
      '-c',
      `"${node}" "${binPath('bgmon-wait')}" F >/dev/null && "${node}" "${binPath('bgmon-start')}" --name G -- true`,
    ]);
    assert.is(f.code, 1);
    assert.is((await h.run('bgmon-status', ['G'])).code, 3, 'G never started');
  }),
);

test(
  'wait: a job removed while waited for ends the wait with exit 3 instead of hanging',
  withHome(async (h) => {
    await h.start('gone', ['sleep', '1000']);
    await h.start('other', ['sleep', '1000']);
    const waiter = h.run('bgmon-wait', ['gone', 'other']);
    const tailer = h.run('bgmon-tail', ['gone', '-f']);
    // both must be following before the job goes (started after, they would rightly say "no such job")
    await untilWatching(h, 'bgmon-wait');
    await untilWatching(h, 'bgmon-tail');
    const rm = await h.run('bgmon-rm', ['gone', '--stop', '--grace', '0']);
    assert.is(rm.code, 0, rm.stderr);
    const w = await waiter;
    assert.is(w.code, 3);
    assert.is(w.stderr, 'bgmon-wait: job gone was removed while waiting for it\n');
    assert.is((await tailer).code, 0, 'tail -f ends too');
  }),
);

test.run();
