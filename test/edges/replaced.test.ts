// A record is rewritten by renaming a whole new file over it. A reader that opened the old file
// just before sees it with no name left (nlink 0): that is the previous version, whole, and must
// be read as such, never reported as a corrupt record (bgmon-tail, bgmon-wait and bgmon-status
// each failed on it now and then under load: "a hard link (0 names), not read").
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRecordFile } from 'bgmon-state';
import { eventually, forgeRecord, untilWatching, withHome } from '../helpers';

test(
  'a record renamed over while it is read is read whole: 20,000 reads beside a rewriting process',
  withHome(async (h) => {
    const rec = forgeRecord(h, 'r', { status: 'SUCCEEDED' });
    const file = join(h.root, 'jobs', 'r.json');
    const first = statSync(file).ino;
    // another process rewrites the record as bgmon does: a whole temp file renamed over it
    const [tmp, text] = [JSON.stringify(`${file}.tmp`), JSON.stringify(`${JSON.stringify(rec)}\n`)];
    const loop = `const fs = require('fs'); for (;;) { fs.writeFileSync(${tmp}, ${text}); fs.renameSync(${tmp}, ${JSON.stringify(file)}); }`;
    const writer = h.spawnOutside(process.execPath, ['-e', loop]);
    await eventually(() => statSync(file).ino !== first, 10_000, 'the writer to rewrite the record');
    for (let i = 0; i < 20_000; i++) assert.is(readRecordFile(file, 'r')?.id, rec.id, `read ${i}`);
    assert.is(writer.exitCode, null, 'the writer ran throughout');
  }),
);

test(
  'a record that turns corrupt while waited for is said to be corrupt (exit 1), not removed (exit 3)',
  withHome(async (h) => {
    await h.start('c', ['sleep', '60']);
    const wait = h.run('bgmon-wait', ['c'], { timeoutMs: 30_000 });
    await untilWatching(h, 'bgmon-wait');
    h.handWritten.add('c'); // the test corrupts it
    writeFileSync(join(h.root, 'jobs', 'c.json'), '{"v":1,"name":"c"\n');
    const r = await wait;
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^bgmon-wait: .*jobs\/c\.json: corrupt record/);
  }),
);

test.run();
