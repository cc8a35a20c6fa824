// A run its queue's hand-off started says when it started from its start file: the same time on
// every read, and the same once its end is folded into the record. It was taken from the uptime
// in that file, turned into a time by each reader (boot time = now - /proc/uptime, in 1/100 s),
// so two reads a moment apart told two times up to 10 ms apart.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatedJob, until, untilOnDisk, withHome } from '../helpers';

test(
  'a handed-off run tells one started_at on every read, and its folded record keeps it',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'p']);
    const queued = await h.start('second', ['sleep', '30'], ['--queue', 'p']);
    assert.is(queued.status, 'QUEUED');
    writeFileSync(gate, '');
    const running = await until(h, 'second', 'RUNNING');
    const first = await h.status('first');
    assert.equal([running.sup_pid, running.sup_starttime], [first.sup_pid, first.sup_starttime], 'handed off');
    assert.is(h.record('second').status, 'QUEUED', 'read from its run directory, not its record file');

    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add((await h.status('second')).started_at);
    assert.equal([...seen], [running.started_at], 'one started_at on every read');
    assert.ok(running.started_at >= queued.created_at, 'not before it was queued');
    assert.ok(Date.parse(running.started_at) <= Date.now(), 'not in the future');

    const stop = await h.run('bgmon-stop', ['second', '--grace', '0']);
    assert.is(stop.code, 0, stop.stderr);
    const folded = await untilOnDisk(h, 'second', 'STOPPED');
    assert.is(folded.started_at, running.started_at, 'the folded record keeps it');
  }),
);

test.run();
