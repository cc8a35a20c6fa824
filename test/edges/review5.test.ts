// Review 5: defects found reviewing the day's changes (on-end environment, --after re-check, hand-off).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { listDir, withHome } from '../helpers';

test(
  'a start that fails before its record is written leaves no kept environment (--env values, the hook copy)',
  withHome(async (h) => {
    // something the launch cannot replace at the log's path: the start fails after planning the run
    mkdirSync(join(h.root, 'logs', 'h.log', 'x'), { recursive: true });
    const r = await h.run(
      'bgmon-start',
      ['--name', 'h', '--env', 'TOKEN=abc', '--on-end', 'true', '--', 'sleep', '5'],
      {
        env: { SECRET_OF_CALLER: 'topsecret' },
      },
    );
    assert.is.not(r.code, 0, r.stderr);
    assert.is(r.stdout, '');
    assert.not.ok(existsSync(join(h.root, 'jobs', 'h.json')), 'no record');
    // no record names the run: nothing could ever remove what it kept
    assert.equal(
      listDir(join(h.root, 'run')).filter((f) => f.includes('h@')),
      [],
    );
  }),
);

test.run();
