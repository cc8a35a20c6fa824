// Runs, not only names: NAME@ID, records on stdin select their run by id, --history, pruning.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { lines, slowTest, until, withHome, type TestHome } from '../helpers';

/** Runs `name` once with exit code `code` and waits for its end; returns the ended record. */
async function runOnce(h: TestHome, name: string, code: number, extra: string[] = []): Promise<any> {
  const rec = await h.start(name, ['sh', '-c', `echo run${code}; exit ${code}`], extra);
  await until(h, name, (r) => r.id === rec.id && !['QUEUED', 'RUNNING'].includes(r.status));
  return rec;
}

test(
  'a record on stdin selects its run: wait answers for exactly that run after a rerun',
  withHome(async (h) => {
    const first = await h.run('bgmon-start', ['--name', 'b', '--', 'sh', '-c', 'exit 3']);
    assert.is(first.code, 0, first.stderr);
    await until(h, 'b', 'FAILED');
    const second = await h.start('b', ['sleep', '1000']);
    // the old code waited for the current run (sleep 1000): a timeout, exit 124
    const wait = await h.run('bgmon-wait', ['--timeout', '20s'], { input: first.stdout });
    assert.is(wait.code, 3, `the first run's own exit code: ${wait.stderr}`);
    const [rec] = lines(wait.stdout);
    assert.is(rec.id, JSON.parse(first.stdout).id);
    assert.is(rec.status, 'FAILED');
    assert.is((await h.status('b')).id, second.id, 'the current run is untouched');
  }),
);

test(
  'NAME@ID selects one run in status, wait, tail, stop, signal; no such run exits 3',
  withHome(async (h) => {
    const old = await runOnce(h, 'b', 5);
    const cur = await h.start('b', ['sleep', '1000']);
    const status = await h.run('bgmon-status', [`b@${old.id}`, '--json']);
    assert.is(status.code, 0, status.stderr);
    assert.equal(
      lines(status.stdout).map((r) => [r.id, r.status, r.exit_code]),
      [[old.id, 'FAILED', 5]],
    );
    const curStatus = lines((await h.run('bgmon-status', [`b@${cur.id}`, '--json'])).stdout);
    assert.equal(
      curStatus.map((r) => [r.id, r.status]),
      [[cur.id, 'RUNNING']],
    );
    const wait = await h.run('bgmon-wait', [`b@${old.id}`, '--timeout', '20s']);
    assert.is(wait.code, 5, wait.stderr);
    const tail = await h.run('bgmon-tail', [`b@${old.id}`]);
    assert.is(tail.code, 0, tail.stderr);
    assert.is(tail.stdout, 'run5\n', 'the kept log of that run');
    const stop = await h.run('bgmon-stop', [`b@${old.id}`, '--grace', '0']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].id, old.id);
    const signal = await h.run('bgmon-signal', [`b@${old.id}`, 'TERM']);
    assert.is(signal.code, 1);
    assert.match(signal.stderr, /has ended/);
    assert.is((await h.status('b')).status, 'RUNNING', 'stop and signal of the past run left the current one alone');
    for (const bin of ['bgmon-status', 'bgmon-wait', 'bgmon-tail', 'bgmon-stop', 'bgmon-rm']) {
      const r = await h.run(bin, ['b@nosuchid']);
      assert.is(r.code, 3, `${bin} b@nosuchid: ${r.stderr}`);
      assert.is(r.stdout, '');
      const bad = await h.run(bin, ['b@../x']);
      assert.is(bad.code, 2, `${bin} b@../x: ${bad.stderr}`);
    }
    const stdinGone = await h.run('bgmon-wait', [], { input: JSON.stringify({ name: 'b', id: 'gone-1' }) + '\n' });
    assert.is(stdinGone.code, 3, stdinGone.stderr);
  }),
);

test(
  '--history lists past runs oldest first; plain status does not',
  withHome(async (h) => {
    const a1 = await runOnce(h, 'a', 1);
    const b1 = await runOnce(h, 'b', 2);
    const a2 = await runOnce(h, 'a', 0);
    const plain = lines((await h.run('bgmon-status', ['--json'])).stdout).map((r) => r.id);
    assert.equal(plain, [b1.id, a2.id]);
    const all = await h.run('bgmon-status', ['--history', '--json']);
    assert.is(all.code, 0, all.stderr);
    assert.equal(
      lines(all.stdout).map((r) => r.id),
      [a1.id, b1.id, a2.id],
    );
    const onlyA = lines((await h.run('bgmon-status', ['--history', 'a', '--json'])).stdout);
    assert.equal(
      onlyA.map((r) => [r.id, r.exit_code]),
      [
        [a1.id, 1],
        [a2.id, 0],
      ],
    );
    const glob = lines((await h.run('bgmon-status', ['--history', '[a]*', '--status', 'FAILED', '--json'])).stdout);
    assert.equal(
      glob.map((r) => r.id),
      [a1.id],
    );
  }),
);

slowTest(
  'rm NAME@ID removes one past run; rm --finished --older-than prunes past runs of live names',
  withHome(async (h) => {
    const a1 = await runOnce(h, 'a', 1);
    const a2 = await runOnce(h, 'a', 2);
    await h.start('a', ['sleep', '1000']);
    const one = await h.run('bgmon-rm', [`a@${a1.id}`]);
    assert.is(one.code, 0, one.stderr);
    assert.equal(
      lines(one.stdout).map((r) => r.id),
      [a1.id],
    );
    assert.not.ok(existsSync(join(h.root, 'history', `a@${a1.id}.json`)));
    assert.not.ok(existsSync(join(h.root, 'logs', `a@${a1.id}.log`)));
    assert.ok(existsSync(join(h.root, 'history', `a@${a2.id}.json`)));
    const young = await h.run('bgmon-rm', ['--finished', '--older-than', '1h']);
    assert.is(young.code, 0, young.stderr);
    assert.is(young.stdout, '', 'nothing ended an hour ago');
    const pruned = await h.run('bgmon-rm', ['--finished', '--older-than', '0s']);
    assert.is(pruned.code, 0, pruned.stderr);
    assert.equal(
      lines(pruned.stdout).map((r) => r.id),
      [a2.id],
    );
    assert.equal(readdirSync(join(h.root, 'history')), []);
    assert.equal(readdirSync(join(h.root, 'logs')), ['a.log']);
    assert.is((await h.status('a')).status, 'RUNNING');
  }),
);

slowTest(
  'rm NAME removes the name with its past runs, their logs and --env values',
  withHome(async (h) => {
    await runOnce(h, 'a', 1, ['--env', 'K=v']);
    await runOnce(h, 'a', 0, ['--env', 'K=w']);
    const r = await h.run('bgmon-rm', ['a']);
    assert.is(r.code, 0, r.stderr);
    for (const dir of ['jobs', 'logs', 'history', 'run']) {
      const left = existsSync(join(h.root, dir)) ? readdirSync(join(h.root, dir)).filter((f) => f.includes('a')) : [];
      assert.equal(left, [], `${dir}/ is clean`);
    }
  }),
);

test(
  '--after NAME@ID waits for that run: a past FAILED run cancels, a past SUCCEEDED one lets it run',
  withHome(async (h) => {
    const bad = await runOnce(h, 'a', 1);
    const good = await runOnce(h, 'a', 0);
    await h.start('a', ['sleep', '1000']);
    const cancelled = await h.start('c', ['true'], ['--after', `a@${bad.id}`]);
    assert.equal([cancelled.status, cancelled.after, cancelled.after_ids], ['CANCELLED', ['a'], { a: bad.id }]);
    const ran = await h.start('d', ['true'], ['--after', `a@${good.id}`]);
    assert.is(ran.status, 'RUNNING', 'the run it waits for has SUCCEEDED: no wait for the live one');
    const none = await h.run('bgmon-start', ['--after', 'a@nosuchid', '--', 'true']);
    assert.is(none.code, 2, none.stderr);
  }),
);

test.run();
