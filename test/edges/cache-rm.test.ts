// bgmon-rm removes the records cache, which may hold a copy of what it removed (a command line
// with a secret in it). A listing that began before the rm and writes the cache after it must not
// bring those copies back: rm marks run/records.forgotten before it removes the cache, and a
// listing that finds the mark changed since it began removes the cache it has just written.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { homeFromEnv } from '../../packages/bgmon-state/src/paths';
import { forgetRecordCache, listingSource } from '../../packages/bgmon-state/src/record-cache';
import { listNames } from '../../packages/bgmon-state/src/record';
import { forgeRecord, sleep, withHome } from '../helpers';

test(
  'a listing that began before a bgmon-rm leaves no cache behind it; the next one writes it again',
  withHome(async (h) => {
    for (let i = 0; i < 70; i++) {
      forgeRecord(h, `r${i}`, {
        status: 'SUCCEEDED',
        exit_code: 0,
        ended_at: new Date().toISOString(),
        cmd: ['echo', `secret-${i}`],
      });
    }
    await sleep(1100); // settled (see record-cache.ts)
    const home = homeFromEnv({ BGMON_HOME: h.root });
    const cache = join(h.root, 'run', 'records.cache');
    const listing = () => {
      const names = listNames(home);
      const source = listingSource(home, names.length);
      return { read: () => names.forEach((n) => source.read(n)), finish: () => source.finish() };
    };

    // the rm lands between the listing's reads and its write
    const racing = listing();
    racing.read();
    forgetRecordCache(home);
    racing.finish();
    assert.not.ok(existsSync(cache), 'the listing wrote back copies read before the rm');

    // one that began after it writes the cache, and keeps it
    const next = listing();
    next.read();
    next.finish();
    assert.ok(existsSync(cache));
    assert.ok(readFileSync(cache, 'latin1').includes('secret-7'));
  }),
);

test(
  'bgmon-rm removes the cache and replaces its mark, whatever was there',
  withHome(async (h) => {
    for (let i = 0; i < 70; i++)
      forgeRecord(h, `r${i}`, { status: 'SUCCEEDED', exit_code: 0, ended_at: new Date().toISOString() });
    await sleep(1100);
    assert.is((await h.run('bgmon-status', ['--json'])).code, 0);
    const cache = join(h.root, 'run', 'records.cache');
    const mark = join(h.root, 'run', 'records.forgotten');
    assert.ok(existsSync(cache));
    const r = await h.run('bgmon-rm', ['r3']);
    assert.is(r.code, 0, r.stderr);
    assert.not.ok(existsSync(cache));
    assert.ok(existsSync(mark));
    assert.is(readFileSync(mark, 'utf8'), '');
  }),
);

test.run();
