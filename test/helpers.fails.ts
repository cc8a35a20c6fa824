// The helpers must fail when they should: every test below is EXPECTED TO FAIL, and
// scripts/test.mjs passes this file only when all of them fail with the texts listed here.
// A helper that quietly stopped checking would turn one of these green and fail the run.
// expected failures: 5
// expect: records not matching docs/record.schema.json:
// expect: jobs/keys.json
// expect: bgmon-status printed --json:
// expect: expected: this test only plants the process
// expect: timed out after 800 ms waiting for slow to be SUCCEEDED
// expect: the leaked process was killed by cleanup
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, processes, until, untilOnDisk, withHome } from './helpers';

/** A record that breaks the schema (status unknown), its keys in an order bgmon never writes. */
function badRecord(h: { dir: string; root: string }, name: string): object {
  return {
    status: 'SLEEPING',
    name,
    v: 1,
    id: `bad-${name}`,
    cmd: ['true'],
    cwd: h.dir,
    pid: null,
    started_at: null,
    ended_at: null,
    exit_code: null,
    signal: null,
    log: join(h.root, 'logs', `${name}.log`),
    after: [],
    host: 'h',
    boot_id: 'b',
    starttime: null,
  };
}

test(
  'a record left on disk that breaks the schema fails withHome, whatever its key order',
  withHome(async (h) => {
    await h.start('keys', ['true']);
    await until(h, 'keys', 'SUCCEEDED');
    // not through h.writeRecord: this is what a broken bgmon would leave behind
    writeFileSync(join(h.root, 'jobs', 'keys.json'), JSON.stringify(badRecord(h, 'keys')) + '\n');
  }),
);

test(
  'a record printed by a command that breaks the schema fails withHome',
  withHome(async (h) => {
    await h.start('printed', ['true']);
    // SUCCEEDED with exit code 3 breaks the schema, yet bgmon-status trusts a folded end and prints it
    const { v, ...rest } = await untilOnDisk(h, 'printed', 'SUCCEEDED');
    writeFileSync(join(h.root, 'jobs', 'printed.json'), JSON.stringify({ ...rest, exit_code: 3, v }) + '\n');
    const r = await h.run('bgmon-status', ['printed', '--json']);
    assert.is(r.code, 0, r.stderr);
    // gone from disk before cleanup looks: only the check of what the command printed can catch it
    unlinkSync(join(h.root, 'jobs', 'printed.json'));
  }),
);

test(
  'until() times out on a job that never gets there',
  withHome(async (h) => {
    await h.start('slow', ['sleep', '1000']);
    await until(h, 'slow', 'SUCCEEDED', 800);
  }),
);

let leaked = 0;
test(
  'a process leaked into the home (no handle kept) is started',
  withHome(async (h) => {
    const child = spawn('sleep', ['1000'], { env: h.env, detached: true, stdio: 'ignore' });
    child.unref();
    leaked = child.pid!;
    assert.ok(isAlive(leaked));
    throw new Error('expected: this test only plants the process');
  }),
);

test('the leaked process outlived cleanup', () => {
  const alive = leaked > 0 && isAlive(leaked);
  assert.ok(alive, 'the leaked process was killed by cleanup');
});

test.after(() => {
  // should cleanup have missed it, end it here by pid (it carries this file's home in its env)
  if (leaked > 0 && processes((st) => st.pid === leaked).length > 0) process.kill(leaked, 'SIGKILL');
});

test.run();
