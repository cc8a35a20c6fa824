// The end time comes from the end file's mtime, which the kernel stamps from a coarse clock a few
// ms behind the one started_at is read from: a job that ends at once must still never end before
// it started.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { lines, slowTest, withHome } from '../helpers';

slowTest(
  'ended_at is never before started_at, for 40 jobs that end at once',
  withHome(async (h) => {
    for (let i = 0; i < 40; i++) await h.start(`quick${i}`, ['true']);
    const wait = await h.run('bgmon-wait', ['quick*']);
    assert.is(wait.code, 0, wait.stderr);
    const recs = lines(wait.stdout);
    assert.is(recs.length, 40);
    for (const r of recs) assert.ok(r.ended_at >= r.started_at, `${r.name}: ${r.started_at} -> ${r.ended_at}`);
  }),
);

test.run();
