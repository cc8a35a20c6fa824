// Folding an end into the record races with readers that read the record just before: a reader
// must find the end in the folded record (the fold removes the end file), never call it DEAD.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootId, currentState, homeFromEnv, readStat } from 'bgmon-state';
import { lines, withHome } from '../helpers';

test(
  'a reader holding a RUNNING record while the end is folded reports the folded end, not DEAD',
  withHome(async (h) => {
    const started = await h.start('raced', ['true']);
    const wait = await h.run('bgmon-wait', ['raced']);
    assert.is(wait.code, 0);
    assert.is(h.record('raced').status, 'SUCCEEDED', 'folded, end file gone');
    // what a reader saw a moment earlier, with a supervisor that is still alive (this process)
    const me = readStat(process.pid)!;
    const seenBefore = { ...started, sup_pid: process.pid, sup_starttime: me.starttime, boot_id: bootId() };
    const t0 = Date.now();
    const home = homeFromEnv({ ...process.env, BGMON_HOME: h.root });
    const now = currentState(home, seenBefore);
    assert.is(now.status, 'SUCCEEDED');
    assert.is(now.exit_code, 0);
    // a wait for the supervisor would last SUPERVISOR_WRITE_MS (10 s): half of that is generous
    assert.ok(Date.now() - t0 < 5000, 'answered from the record, without waiting for a supervisor');
    assert.equal(lines((await h.run('bgmon-status', ['raced', '--json'])).stdout)[0].status, 'SUCCEEDED');
  }),
);

test.run();
