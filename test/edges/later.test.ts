import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from 'bgmon-state';
import {
  eventually,
  homeProcs,
  isAlive,
  lines,
  listDir,
  sleep,
  slowTest,
  until,
  untilOnDisk,
  withHome,
} from '../helpers';

// Issue 11, section 6: start later (--in DUR, --at TIME).

const pad = (n: number) => String(n).padStart(2, '0');

test(
  'later: --in 1s is QUEUED with not_before, then starts by itself (no bgmon command running)',
  withHome(async (h) => {
    const t0 = Date.now();
    const r = await h.start('soon', ['true'], ['--in', '1s']);
    assert.is(r.status, 'QUEUED');
    assert.is(r.pid, null);
    const due = Date.parse(r.not_before);
    assert.ok(due >= t0 + 1000 && due <= Date.now() + 1000, r.not_before);
    const done = await untilOnDisk(h, 'soon', (x) => x.status !== 'QUEUED', 20_000);
    assert.ok(Date.parse(done.started_at) >= due, `started ${done.started_at}, due ${r.not_before}`);
    await until(h, 'soon', 'SUCCEEDED');
  }),
);

test(
  'later: "in" on a bgmon-start - line may be a JSON number of seconds, as "90" is; other types are refused',
  withHome(async (h) => {
    const t0 = Date.now();
    const input = `${JSON.stringify({ name: 'num', cmd: ['true'], in: 90 })}\n`;
    const r = await h.run('bgmon-start', ['-'], { input });
    assert.is(r.code, 0, r.stderr);
    const rec = lines(r.stdout)[0];
    assert.is(rec.status, 'QUEUED');
    const due = Date.parse(rec.not_before);
    assert.ok(due >= t0 + 90_000 && due <= Date.now() + 90_000, rec.not_before);
    for (const bad of [-5, true]) {
      const refused = await h.run('bgmon-start', ['-'], {
        input: `${JSON.stringify({ name: 'x', cmd: ['true'], in: bad })}\n`,
      });
      assert.is(refused.code, 2, `${bad}: ${refused.stderr}`);
      assert.match(refused.stderr, /^bgmon-start: stdin line 1: --in: invalid duration/, String(bad));
    }
    const spec = (seconds: number) => `${JSON.stringify({ name: 'tiny', cmd: ['true'], in: seconds })}\n`;
    const huge = await h.run('bgmon-start', ['-'], { input: spec(1e21) });
    assert.is(huge.code, 2);
    assert.match(huge.stderr, /^bgmon-start: stdin line 1: --in: duration \d+\.000 is too long\n$/);
    const tiny = await h.run('bgmon-start', ['-'], { input: spec(1e-7) });
    assert.is(tiny.code, 0, tiny.stderr);
    assert.equal(
      listDir(join(h.root, 'jobs')).filter((f) => !f.startsWith('.')),
      ['num.json', 'tiny.json'],
    );
  }),
);

test(
  'later: --at HH:MM:SS a few seconds ahead starts then; an ISO time works too',
  withHome(async (h) => {
    // 3 to 4 s ahead (seconds are cut off): still ahead once bgmon-start runs, even under load
    const at = new Date(Date.now() + 4000);
    const hhmmss = `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}`;
    const r = await h.start('clock', ['true'], ['--at', hhmmss]);
    assert.is(r.status, 'QUEUED');
    const iso = new Date(Date.now() + 1500).toISOString();
    const r2 = await h.start('iso', ['true'], ['--at', iso]);
    assert.is(r2.not_before, iso);
    const done = await untilOnDisk(h, 'clock', (x) => x.status !== 'QUEUED', 20_000);
    assert.ok(Date.parse(done.started_at) >= Date.parse(r.not_before));
    assert.ok(Date.parse(r.not_before) > Date.now() - 30_000, 'today, not tomorrow');
    assert.ok(
      Date.parse((await untilOnDisk(h, 'iso', (x) => x.status !== 'QUEUED', 20_000)).started_at) >= Date.parse(iso),
    );
  }),
);

slowTest(
  'later: a killed sleeper does not strand the job: bgmon-status starts it once due',
  withHome(async (h) => {
    // due well after the steps below (two bgmon runs and a kill), even on a loaded machine
    const r = await h.start('orphan', ['true'], ['--in', '4s']);
    const sleepers = homeProcs(h.root);
    const groups = new Set(sleepers.map((pid) => readStat(pid)!.pgrp));
    assert.is(groups.size, 1, 'one sleeper (sh and its sleep) for the delayed job');
    for (const pgid of groups) process.kill(-pgid, 'SIGKILL');
    await eventually(() => sleepers.every((pid) => !isAlive(pid)), 5000, 'the sleeper to die');
    assert.is((await h.status('orphan')).status, 'QUEUED', 'not yet due');
    await sleep(Math.max(0, Date.parse(r.not_before) - Date.now()) + 100);
    await until(h, 'orphan', 'SUCCEEDED');
  }),
);

slowTest(
  'later: --in with --after and --queue waits for all three',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('pre', ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.05; done`]);
    await h.start('hog', ['sleep', '1000'], ['--queue', 'q']);
    const r = await h.start('late', ['touch', join(h.dir, 'ran')], ['--in', '1s', '--after', 'pre', '--queue', 'q']);
    assert.equal([r.status, r.queue, r.after], ['QUEUED', 'q', ['pre']]);
    await sleep(1500);
    assert.is((await h.status('late')).status, 'QUEUED', 'due, but pre has not ended');
    writeFileSync(gate, '');
    await until(h, 'pre', 'SUCCEEDED');
    await sleep(500);
    assert.is((await h.status('late')).status, 'QUEUED', 'due and pre done, but the queue is full');
    assert.not.ok(existsSync(join(h.dir, 'ran')));
    const stop = await h.run('bgmon-stop', ['hog', '--grace', '1s']);
    assert.is(stop.code, 0, stop.stderr);
    await until(h, 'late', 'SUCCEEDED');
  }),
);

test(
  'later: bad --in and --at are usage errors that write nothing',
  withHome(async (h) => {
    for (const args of [
      ['--in', 'soon'],
      ['--in', '-1s'],
      ['--at', '25:00'],
      ['--at', 'tomorrow'],
      ['--at', '2001-01-01T00:00:00Z'],
      ['--in', '1s', '--at', '10:00'],
      ['--in', '400d'],
    ]) {
      const r = await h.run('bgmon-start', ['--name', 'x', ...args, '--', 'true']);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(listDir(join(h.root, 'jobs')), []);
  }),
);

test.run();
