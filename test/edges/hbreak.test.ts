import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lines, until, withHome, type TestHome } from '../helpers';

// Adversarial review of the queue's hand-off (handoff.ts, start-file.ts, supervisor.sh).

const runDir = (h: TestHome, queue: string, seq: number) => join(h.root, 'run', 'queues', `${queue}.runs`, String(seq));

/** Starts one job in queue q; its record. */
async function startIn(h: TestHome, name: string, cmd: string[], extra: string[] = []): Promise<any> {
  const r = await h.run('bgmon-start', ['--name', name, '--queue', 'q', ...extra, '--', ...cmd]);
  assert.is(r.code, 0, r.stderr);
  return lines(r.stdout)[0];
}

test(
  'a queued run at a SEQ reused after a lost queue file is not taken for the earlier run its directory held',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    // A holds slot 1 (and the queue's frontier) until the gate opens; B then C run in slot 2,
    // C by hand-off: C's run directory (with its start) stays in place behind A
    await startIn(h, 'A', ['sh', '-c', `while [ ! -e ${gate} ]; do sleep 0.02; done`], ['--slots', '2']);
    await startIn(h, 'B', ['sleep', '0.3']);
    const c = await startIn(h, 'C', ['true']);
    assert.is(c.queue_seq, 2);
    await until(h, 'C', 'SUCCEEDED');
    assert.ok(existsSync(join(runDir(h, 'q', 2), 'start')), 'C was handed off');
    assert.is((await h.run('bgmon-rm', ['C'])).code, 0);
    // the queue file is lost: rebuilt from the records, it numbers D as C was
    rmSync(join(h.root, 'run', 'queues', 'q.json'));
    const d = await startIn(h, 'D', ['sh', '-c', 'echo D ran']);
    assert.is(d.queue_seq, 2, 'D got the SEQ of the removed C');
    assert.is(d.status, 'QUEUED');
    assert.is((await h.status('D')).status, 'QUEUED', 'D waits for A (slots 1 after the rebuild), not DEAD');
    writeFileSync(gate, '');
    const done = await until(h, 'D', 'SUCCEEDED');
    assert.is(done.exit_code, 0);
    assert.is(readFileSync(join(h.root, 'logs', 'D.log'), 'utf8'), 'D ran\n');
  }),
);

test.run();
