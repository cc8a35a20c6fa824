import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { isAlive, lines, until, withHome, type TestHome } from './helpers';

async function twoFailedOneRunning(h: TestHome) {
  await h.start('f1', ['sh', '-c', 'echo f1 out; exit 1']);
  await h.start('f2', ['sh', '-c', 'echo f2 out; exit 2']);
  const run = await h.start('r', ['sleep', '1000']);
  await until(h, 'f1', 'FAILED');
  await until(h, 'f2', 'FAILED');
  return run;
}

test(
  'status --json | tail, | wait, | status -',
  withHome(async (h) => {
    await twoFailedOneRunning(h);
    const failed = (await h.run('bgmon-status', ['--status', 'FAILED', '--json'])).stdout;
    const tail = await h.run('bgmon-tail', ['-n', '5'], { input: failed });
    assert.is(tail.code, 0, tail.stderr);
    assert.is(tail.stdout, 'f1 | f1 out\nf2 | f2 out\n');
    const wait = await h.run('bgmon-wait', [], { input: failed });
    assert.is(wait.code, 1);
    assert.equal(
      lines(wait.stdout).map((r) => r.name),
      ['f1', 'f2'],
    );
    const status = await h.run('bgmon-status', ['-'], { input: failed });
    assert.equal(
      lines(status.stdout).map((r) => r.name),
      ['f1', 'f2'],
    );
  }),
);

test(
  'status --status RUNNING | stop stops exactly the running jobs',
  withHome(async (h) => {
    const run = await twoFailedOneRunning(h);
    const running = (await h.run('bgmon-status', ['--status', 'RUNNING', '--json'])).stdout;
    const r = await h.run('bgmon-stop', [], { input: running });
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => [x.name, x.status]),
      [['r', 'STOPPED']],
    );
    assert.not.ok(isAlive(run.pid));
    assert.is(h.record('f1').status, 'FAILED');
  }),
);

test(
  'empty stdin is an empty selection: exit 0, nothing done (bgmon-wait: exit 3, see edges/select)',
  withHome(async (h) => {
    const run = await h.start('r', ['sleep', '1000']);
    for (const bin of ['bgmon-stop', 'bgmon-tail']) {
      const r = await h.run(bin, [], { input: '' });
      assert.is(r.code, 0, `${bin}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr, '');
    }
    assert.is((await h.run('bgmon-stop', [], { input: '\n\n' })).code, 0, 'blank lines are skipped');
    assert.ok(isAlive(run.pid));
  }),
);

test(
  'malformed stdin is exit 2 and no job is touched, not even the valid lines before it',
  withHome(async (h) => {
    const a = await h.start('a', ['sleep', '1000']);
    for (const bad of [
      '{"name":"a"}\nnot json\n',
      '{"name":"a"}\n{"name":"../x"}\n',
      '{"name":"a"}\n[1,2]\n',
      '{"name":"a"}\n{"nome":"a"}\n',
      `{"name":"a"}\n{"name":"${'x'.repeat(2_000_000)}"}\n`,
    ]) {
      const r = await h.run('bgmon-stop', ['--grace', '0'], { input: bad });
      assert.is(r.code, 2, r.stderr);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1);
      assert.match(r.stderr, /^bgmon-stop: stdin/);
    }
    assert.ok(isAlive(a.pid), 'a still runs');
    assert.is(h.record('a').status, 'RUNNING');
    const unknown = await h.run('bgmon-stop', [], { input: '{"name":"a"}\n{"name":"ghost"}\n' });
    assert.is(unknown.code, 3);
    assert.ok(isAlive(a.pid), 'nothing is stopped when a name does not exist');
  }),
);

test(
  'status never reads stdin: it returns at once under an open, silent stdin',
  withHome(async (h) => {
    await h.start('a', ['true']);
    const r = await h.run('bgmon-status', ['--json'], { openStdin: true, timeoutMs: 10_000 });
    assert.is(r.code, 0);
    assert.is(lines(r.stdout).length, 1);
    assert.ok(r.ms < 5000, `${r.ms} ms`);
  }),
);

test.run();
