import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, readStat } from 'bgmon-state';
import {
  eventually,
  groupMembers,
  isAlive,
  lines,
  processes,
  sleep,
  staleRecord,
  untilGone,
  untilOnDisk,
  withHome,
  type TestHome,
} from './helpers';

async function startAndSettle(h: TestHome, name: string, script: string): Promise<any> {
  const rec = await h.start(name, ['sh', '-c', script]);
  await eventually(() => groupMembers(rec.pid).length >= 2, 5000, 'children to start');
  return rec;
}

test(
  'stop: a job and all the children in its group end; record STOPPED',
  withHome(async (h) => {
    const rec = await startAndSettle(h, 'tree', 'sleep 1000 & sleep 1000 & wait');
    const r = await h.run('bgmon-stop', ['tree']);
    assert.is(r.code, 0, r.stderr);
    const [out] = lines(r.stdout);
    assert.is(out.name, 'tree');
    assert.is(out.status, 'STOPPED');
    assert.is(out.signal, 'SIGTERM');
    assert.equal(groupMembers(rec.pid), []);
    assert.is(h.record('tree').status, 'STOPPED');
    assert.ok(r.ms < 5000, `returned in ${r.ms} ms, not after the 10 s grace`);
  }),
);

test(
  'stop: a job that ignores TERM is SIGKILLed after --grace 1s',
  withHome(async (h) => {
    const rec = await startAndSettle(h, 'stubborn', 'trap "" TERM; sleep 1000 & wait');
    const r = await h.run('bgmon-stop', ['stubborn', '--grace', '1s']);
    assert.is(r.code, 0, r.stderr);
    const [out] = lines(r.stdout);
    assert.is(out.status, 'STOPPED');
    assert.is(out.signal, 'SIGKILL');
    assert.ok(r.ms >= 900, `waited the grace (${r.ms} ms)`);
    assert.equal(groupMembers(rec.pid), []);
  }),
);

test(
  'stop: a child that called setsid is found by its marker and stopped too',
  withHome(async (h) => {
    const rec = await h.start('escaper', ['sh', '-c', 'setsid sleep 1000 & echo started; sleep 1000']);
    const escaped = await eventually(
      () =>
        processes(
          (st) => st.session !== rec.pid && st.session === st.pid && environHas(st.pid, `BGMON_JOB_ID=${rec.id}`),
        )[0]?.pid,
      5000,
      'the escaped child',
    );
    const r = await h.run('bgmon-stop', ['escaper']);
    assert.is(r.code, 0, r.stderr);
    assert.is(lines(r.stdout)[0].status, 'STOPPED');
    await untilGone([escaped], 'the escaped child');
    assert.equal(groupMembers(rec.pid), []);
  }),
);

test(
  'stop: a STALE record pointing at an unrelated live process: exit 1, nothing signalled',
  withHome(async (h) => {
    const bystander = h.spawnOutside('sleep', ['1000']);
    await eventually(() => readStat(bystander.pid!));
    staleRecord(h, 'reused', bystander.pid!);
    const r = await h.run('bgmon-stop', ['reused', '--grace', '0']);
    assert.is(r.code, 1);
    assert.match(r.stderr, /^bgmon-stop: job reused is STALE: pid \d+ now belongs to another process/);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.is(lines(r.stdout)[0].status, 'STALE');
    await sleep(200);
    assert.ok(isAlive(bystander.pid!), 'the unrelated process is still alive');
    assert.not.ok(existsSync(join(h.root, 'run', 'reused.stop')));
  }),
);

test(
  'stop: a finished job is left unchanged, exit 0; unknown job exit 3; bad flags exit 2',
  withHome(async (h) => {
    await h.start('done', ['sh', '-c', 'exit 5']);
    // the record as folded on disk: status may say FAILED a moment before the fold is written
    const before = await untilOnDisk(h, 'done', 'FAILED');
    const r = await h.run('bgmon-stop', ['done']);
    assert.is(r.code, 0);
    assert.equal(lines(r.stdout), [before]);
    assert.equal(h.record('done'), before);
    assert.is((await h.run('bgmon-stop', ['nope'])).code, 3);
    for (const bad of [
      ['done', '--signal', 'BOGUS'],
      ['done', '--grace', 'abc'],
      ['done', '--grace=-1'],
      ['done', '--grace', '1e309'],
      ['done', '--signal', '99'],
    ]) {
      const res = await h.run('bgmon-stop', bad);
      assert.is(res.code, 2, bad.join(' '));
      assert.is(res.stdout, '');
      assert.is(res.stderr.trim().split('\n').length, 1);
    }
  }),
);

test(
  'stop: --signal INT by name and by number',
  withHome(async (h) => {
    await h.start('int1', ['sleep', '1000']);
    await h.start('int2', ['sleep', '1000']);
    const a = await h.run('bgmon-stop', ['int1', '--signal', 'SIGINT']);
    const b = await h.run('bgmon-stop', ['int2', '--signal', '2']);
    assert.is(lines(a.stdout)[0].signal, 'SIGINT');
    assert.is(lines(b.stdout)[0].signal, 'SIGINT');
    assert.is(lines(b.stdout)[0].status, 'STOPPED');
  }),
);

test.run();
