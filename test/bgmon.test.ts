import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { binPath, lines, schemaProblems, withHome } from './helpers';

test(
  'bgmon dispatches to every command like git',
  withHome(async (h) => {
    const start = await h.run('bgmon', ['start', '--name', 'j', '--', 'sh', '-c', 'echo hi; exit 3']);
    assert.is(start.code, 0, start.stderr);
    assert.is(JSON.parse(start.stdout).name, 'j');
    const wait = await h.run('bgmon', ['wait', 'j']);
    assert.is(wait.code, 3, 'the exit code of the command passes through');
    assert.is(lines((await h.run('bgmon', ['status', '--json'])).stdout)[0].status, 'FAILED');
    assert.is((await h.run('bgmon', ['tail', 'j'])).stdout, 'hi\n');
    assert.is((await h.run('bgmon', ['stop', 'j'])).code, 0);
    assert.equal(
      lines((await h.run('bgmon', ['rm', 'j'])).stdout).map((r) => r.name),
      ['j'],
    );
    const help = await h.run('bgmon', ['stop', '--help']);
    assert.match(help.stdout, /^Usage: bgmon-stop/);
  }),
);

test(
  'bgmon alone or --help lists the commands; unknown command exits 2',
  withHome(async (h) => {
    for (const args of [[], ['--help']]) {
      const r = await h.run('bgmon', args);
      assert.is(r.code, 0);
      for (const c of ['start', 'status', 'stop', 'tail', 'wait', 'rm'])
        assert.match(r.stdout, new RegExp(`^  ${c}\\s+\\S`, 'm'));
    }
    const bad = await h.run('bgmon', ['frobnicate']);
    assert.is(bad.code, 2);
    assert.is(bad.stdout, '');
    assert.is(bad.stderr, 'bgmon: unknown command "frobnicate" (see bgmon --help)\n');
    assert.match((await h.run('bgmon', ['--version'])).stdout, /^bgmon \d+\.\d+\.\d+\n$/);
  }),
);

test(
  'every command answers --help, --version and rejects unknown flags',
  withHome(async (h) => {
    for (const bin of ['bgmon-start', 'bgmon-status', 'bgmon-stop', 'bgmon-tail', 'bgmon-wait', 'bgmon-rm']) {
      const help = await h.run(bin, ['--help']);
      assert.is(help.code, 0, bin);
      assert.match(help.stdout, new RegExp(`^Usage: ${bin}`));
      assert.match(help.stdout, /\nExit status:\n {2}\S/);
      assert.match(help.stdout, /\nExamples:\n/);
      assert.match((await h.run(bin, ['--version'])).stdout, new RegExp(`^${bin} \\d+\\.\\d+\\.\\d+\\n$`));
      const bad = await h.run(bin, ['--nope', 'x']);
      assert.is(bad.code, 2, bin);
      assert.is(bad.stderr, `${bin}: unknown option --nope (see --help)\n`);
    }
  }),
);

test(
  'stop, tail and wait without names and with a terminal on stdin exit 2',
  withHome(async (h) => {
    for (const bin of ['bgmon-stop', 'bgmon-tail', 'bgmon-wait']) {
      const r = await h.run('/usr/bin/script', ['-qec', `"${process.execPath}" "${binPath(bin)}"`, '/dev/null']);
      assert.is(r.code, 2, `${bin}: ${r.stdout}`);
      assert.match(r.stdout, new RegExp(`${bin}: no job names given \\(and stdin is a terminal\\)`));
    }
  }),
);

test(
  'the record schema accepts what bgmon writes and rejects what it must not',
  withHome(async (h) => {
    const rec = await h.start('s', ['true']);
    assert.is(schemaProblems(rec), null);
    assert.ok(h.checkedRecords >= 1, 'records printed by the binaries are checked');
    assert.ok(schemaProblems({ ...rec, status: 'WEIRD' }));
    assert.ok(schemaProblems({ ...rec, name: '../x' }));
    assert.ok(schemaProblems({ ...rec, exit_code: 3 }), 'RUNNING with an exit code');
    assert.ok(schemaProblems({ ...rec, status: 'SUCCEEDED', ended_at: rec.started_at, exit_code: 1 }));
    const { pid, ...noPid } = rec;
    assert.ok(schemaProblems(noPid));
  }),
);

test.run();
