// last_output_at is the log's mtime, from the kernel's coarse clock, while started_at is read
// from Node's: a job that prints at once could read as having written before it started (the
// demo's own job did, by 5 ms). It is never before started_at, as ended_at is not.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { notBefore } from '../../packages/bgmon-state/src/fsutil';
import { forgeRecord, lines, untilOnDisk, withHome } from '../helpers';

test(
  'a log last written (by its mtime) before the run started reads as written at the start',
  withHome(async (h) => {
    const mtime = new Date('2026-01-02T03:04:05.100Z');
    const rec = (name: string, startedAt: string) => {
      const log = join(h.root, 'logs', `${name}.log`);
      forgeRecord(h, name, { status: 'SUCCEEDED', exit_code: 0, started_at: startedAt, ended_at: startedAt, log });
      writeFileSync(log, 'out\n');
      // exactly .100 s (utimes with a Date rounds through a double)
      execFileSync('touch', ['-m', '-d', `@${mtime.getTime() / 1000}`, log]);
    };
    rec('behind', '2026-01-02T03:04:05.150Z'); // the log's mtime 50 ms before the start
    rec('after', '2026-01-02T03:04:05.050Z'); // written 50 ms after the start
    rec('odd', 'not a time'); // a hand-written record: its start says nothing
    const r = await h.run('bgmon-status', ['behind', 'after', 'odd', '--json']);
    assert.is(r.code, 0, r.stderr);
    const at = Object.fromEntries(lines(r.stdout).map((x) => [x.name, x.last_output_at]));
    assert.equal(at, {
      behind: '2026-01-02T03:04:05.150Z',
      after: '2026-01-02T03:04:05.100Z',
      odd: '2026-01-02T03:04:05.100Z',
    });
    const w = await h.run('bgmon-wait', ['behind']);
    assert.is(lines(w.stdout)[0].last_output_at, '2026-01-02T03:04:05.150Z', 'bgmon-wait prints the same');
  }),
);

test(
  'jobs that print at once never show output before their start',
  withHome(async (h) => {
    const names = Array.from({ length: 12 }, (_, i) => `p${i}`);
    for (const name of names) await h.start(name, ['echo', 'at once']);
    for (const name of names) await untilOnDisk(h, name, 'SUCCEEDED');
    const r = await h.run('bgmon-status', ['--json', ...names]);
    for (const rec of lines(r.stdout)) {
      assert.ok(rec.last_output_at >= rec.started_at, `${rec.name}: ${rec.last_output_at} < ${rec.started_at}`);
    }
  }),
);

test('a file time is raised to a later floor only when the floor is a time, compared as times', () => {
  const t = '2026-01-02T03:04:05.100Z';
  assert.is(notBefore(t, '2026-01-02T03:04:05.150Z'), '2026-01-02T03:04:05.150Z');
  assert.is(notBefore(t, '2026-01-02T03:04:05.050Z'), t);
  assert.is(notBefore(t, null), t);
  // not toISOString's form: 05Z is before 05.100Z, though it sorts after it as text
  assert.is(notBefore(t, '2026-01-02T03:04:05Z'), t);
  assert.is(notBefore(t, '2026-01-02T03:04:06Z'), '2026-01-02T03:04:06.000Z');
  for (const odd of ['not a time', 'zzzz-01-02T03:04:05.100Z', '']) assert.is(notBefore(t, odd), t, odd);
});

test.run();
