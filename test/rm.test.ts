import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, lines, listDir, until, untilOnDisk, withHome } from './helpers';

test(
  'rm removes a finished job: record, log, kept logs; prints the removed records (the past run too)',
  withHome(async (h) => {
    const one = await h.start('job', ['sh', '-c', 'echo one']);
    await until(h, 'job', 'SUCCEEDED');
    const two = await h.start('job', ['sh', '-c', 'echo two']);
    await until(h, 'job', 'SUCCEEDED');
    await h.start('job.keep', ['true']);
    await until(h, 'job.keep', 'SUCCEEDED');
    assert.is(listDir(join(h.root, 'logs')).length, 3);
    const r = await h.run('bgmon-rm', ['job']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => [x.name, x.id, x.status]),
      [
        ['job', one.id, 'SUCCEEDED'],
        ['job', two.id, 'SUCCEEDED'],
      ],
    );
    assert.equal(listDir(join(h.root, 'jobs')), ['job.keep.json']);
    assert.equal(listDir(join(h.root, 'logs')), ['job.keep.log']);
    assert.is((await h.run('bgmon-status', ['job'])).code, 3);
    assert.is((await h.run('bgmon-rm', ['job'])).code, 3);
  }),
);

test(
  'rm refuses a RUNNING job (exit 1) and removes the others; --stop stops it first',
  withHome(async (h) => {
    const live = await h.start('live', ['sleep', '1000']);
    await h.start('done', ['true']);
    await until(h, 'done', 'SUCCEEDED');
    const r = await h.run('bgmon-rm', ['live', 'done']);
    assert.is(r.code, 1);
    assert.is(r.stderr, 'bgmon-rm: job live is RUNNING; stop it first or use --stop\n');
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['done'],
    );
    assert.ok(isAlive(live.pid));
    assert.ok(existsSync(join(h.root, 'jobs', 'live.json')));
    const s = await h.run('bgmon-rm', ['live', '--stop']);
    assert.is(s.code, 0, s.stderr);
    assert.equal(
      lines(s.stdout).map((x) => [x.name, x.status]),
      [['live', 'STOPPED']],
    );
    assert.not.ok(isAlive(live.pid));
    assert.equal(listDir(join(h.root, 'jobs')), []);
  }),
);

test(
  'rm --finished [--older-than] removes only ended jobs, old enough; reads stdin',
  withHome(async (h) => {
    await h.start('old', ['true']);
    await h.start('new', ['sh', '-c', 'exit 1']);
    const live = await h.start('live', ['sleep', '1000']);
    const old = await untilOnDisk(h, 'old', 'SUCCEEDED');
    await until(h, 'new', 'FAILED');
    h.writeRecord('old', { ...old, ended_at: new Date(Date.now() - 3 * 3600_000).toISOString() });
    const r = await h.run('bgmon-rm', ['--finished', '--older-than', '1h'], { openStdin: true });
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['old'],
    );
    const failed = (await h.run('bgmon-status', ['--status', 'FAILED', '--json'])).stdout;
    const p = await h.run('bgmon-rm', [], { input: failed });
    assert.equal(
      lines(p.stdout).map((x) => x.name),
      ['new'],
    );
    const all = await h.run('bgmon-rm', ['--finished']);
    assert.is(all.code, 0);
    assert.is(all.stdout, '');
    assert.ok(isAlive(live.pid));
    assert.is((await h.run('bgmon-rm', ['--older-than', '1h'])).code, 2);
    assert.is((await h.run('bgmon-rm', ['--finished', '--older-than', 'x'])).code, 2);
  }),
);

test.run();
