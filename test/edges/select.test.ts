// Selections at their edges: an empty selection, a corrupt record named or swept, odd times.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { age } from 'bgmon-state';
import { lines, untilOnDisk, withHome, type Result } from '../helpers';

function oneLine(r: Result, code: number, what: string): void {
  assert.is(r.code, code, `${what}: ${r.stderr}`);
  assert.is(r.stdout, '', `${what}: nothing on stdout`);
  assert.is(r.stderr.split('\n').length, 2, `${what}: exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
}

test(
  'an empty selection on stdin selects nothing: status lists nothing, wait exits 3, stop/tail/rm exit 0',
  withHome(async (h) => {
    const victim = await h.start('victim', ['sleep', '1000']);
    // every shape of nothing in test:all; an empty stdin and blank lines in the default run
    for (const input of process.env.BGMON_TEST_ALL === '1' ? ['', '\n', '\n  \n'] : ['', '\n  \n']) {
      const status = await h.run('bgmon-status', ['-', '--json'], { input });
      assert.is(status.code, 0, status.stderr);
      assert.is(status.stdout, '', `status - with ${JSON.stringify(input)} lists nothing`);
      const table = await h.run('bgmon-status', ['-', '--table'], { input });
      assert.is(table.stdout.trim().split('\n').length, 1, `only the header: ${table.stdout}`);
      for (const args of [[], ['-'], ['--timeout', '5s'], ['-', '--any']]) {
        const wait = await h.run('bgmon-wait', args, { input });
        oneLine(wait, 3, `bgmon-wait ${args.join(' ')} on ${JSON.stringify(input)}`);
        assert.match(wait.stderr, /^bgmon-wait: .*empty/);
      }
      for (const [bin, args] of [
        ['bgmon-stop', ['--grace', '0']],
        ['bgmon-stop', ['-']],
        ['bgmon-tail', []],
        ['bgmon-tail', ['-']],
        ['bgmon-rm', []],
        ['bgmon-rm', ['-', '--stop']],
      ] as [string, string[]][]) {
        const r = await h.run(bin, args, { input });
        assert.is(r.code, 0, `${bin} ${args.join(' ')}: ${r.stderr}`);
        assert.is(r.stdout, '', `${bin} ${args.join(' ')}`);
      }
    }
    // the pipeline from the issue: nothing selected, nothing stopped
    assert.is((await h.status('victim')).status, 'RUNNING');
    assert.ok(victim.pid > 1);
  }),
);

async function finished(h: any, name: string): Promise<any> {
  await h.start(name, ['sh', '-c', 'echo out']);
  return untilOnDisk(h, name, 'SUCCEEDED');
}

test(
  'bgmon-rm NAME removes a corrupt record and its log; --finished skips it with a note',
  withHome(async (h) => {
    const good = await finished(h, 'good');
    const jobs = join(h.root, 'jobs');
    const logs = join(h.root, 'logs');
    const outside = join(h.dir, 'outside.json');
    writeFileSync(outside, JSON.stringify({ ...good, name: 'linked' }) + '\n');
    const corrupt: Record<string, () => void> = {
      notjson: () => writeFileSync(join(jobs, 'notjson.json'), 'hello\n'),
      empty: () => writeFileSync(join(jobs, 'empty.json'), ''),
      shape: () => writeFileSync(join(jobs, 'shape.json'), '{"v":1,"name":"shape"}\n'),
      linked: () => symlinkSync(outside, join(jobs, 'linked.json')),
      dangling: () => symlinkSync(join(h.dir, 'nowhere'), join(jobs, 'dangling.json')),
    };
    const plant = () => {
      for (const [name, make] of Object.entries(corrupt)) {
        h.handWritten.add(name);
        make();
        writeFileSync(join(logs, `${name}.log`), 'old output\n');
      }
    };
    plant();
    // --finished: the good job goes, every corrupt one stays with a note naming its file
    const sweep = await h.run('bgmon-rm', ['--finished']);
    assert.is(sweep.code, 0, sweep.stderr);
    assert.equal(
      lines(sweep.stdout).map((r) => r.name),
      ['good'],
    );
    assert.not.ok(existsSync(join(jobs, 'good.json')));
    const notes = sweep.stderr.trim().split('\n');
    assert.is(notes.length, Object.keys(corrupt).length, sweep.stderr);
    for (const name of Object.keys(corrupt)) {
      assert.ok(
        notes.some(
          (l) => l.startsWith(`bgmon-rm: ${join(jobs, name)}.json: corrupt record (`) && l.includes(`bgmon-rm ${name}`),
        ),
        `${name}: ${sweep.stderr}`,
      );
      assert.ok(existsSync(join(logs, `${name}.log`)), `${name}: its log is kept by --finished`);
    }
    // named (and by glob): removed with its log, exit 0, nothing printed as a record
    for (const args of [['notjson'], ['empty', 'shape'], ['linked'], ['dang*']]) {
      const r = await h.run('bgmon-rm', args);
      assert.is(r.code, 0, `${args}: ${r.stderr}`);
      assert.is(r.stdout, '', `${args}`);
    }
    for (const name of Object.keys(corrupt)) {
      assert.not.ok(
        existsSync(join(jobs, `${name}.json`)) || isLink(join(jobs, `${name}.json`)),
        `${name} record removed`,
      );
      assert.not.ok(existsSync(join(logs, `${name}.log`)), `${name} log removed`);
    }
    assert.ok(existsSync(outside), 'a symlinked record is unlinked, never its target');
    assert.is((await h.run('bgmon-status', [])).code, 0, 'nothing corrupt is left');
    // after removal the name is usable again, as start's hint promises
    assert.is((await h.run('bgmon-start', ['--name', 'notjson', '--', 'true'])).code, 0);
  }),
);

function isLink(path: string): boolean {
  try {
    return require('node:fs').lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}

test(
  'AGE is "-" for a start time that is garbage or in the future, never NaN',
  withHome(async (h) => {
    const good = await finished(h, 'good');
    const future = new Date(Date.now() + 3 * 86400_000).toISOString();
    const cases: Record<string, object> = {
      garbage: { started_at: 'garbage', ended_at: null },
      future: { started_at: future, ended_at: null },
      endgarbage: { ended_at: 'not a time' },
      backwards: { started_at: good.ended_at, ended_at: '2000-01-01T00:00:00.000Z' },
      nostart: { started_at: null, created_at: 'junk', ended_at: null },
    };
    for (const [name, fields] of Object.entries(cases))
      h.writeRecord(name, { ...good, name, id: `${name}-1`, ...fields });
    const r = await h.run('bgmon-status', ['--table']);
    assert.is(r.code, 0, r.stderr);
    assert.not.match(r.stdout, /NaN/);
    // columns by the header's positions: START may be two words (MM-DD HH:MM)
    const [header, ...body] = r.stdout.trimEnd().split('\n');
    const rows = body.map((l) => [l.split(/\s+/)[0], '', '', l.slice(header.indexOf('AGE')).split(/\s+/)[0]]);
    for (const name of Object.keys(cases)) {
      const row = rows.find((cells) => cells[0] === name);
      assert.ok(row, `${name} listed`);
      assert.is(row![3], '-', `${name}: AGE column`);
    }
    assert.match(rows.find((cells) => cells[0] === 'good')![3], /^\d+s$/);
    assert.is(age('garbage', null), '-');
    assert.is(age('2026-01-01T00:00:00.000Z', 'garbage'), '-');
    assert.is(age(future, null), '-');
    assert.is(age('2026-01-01T00:00:00.000Z', '2025-12-31T00:00:00.000Z'), '-');
    assert.is(age(new Date().toISOString(), null), '0s', 'just started is 0s');
  }),
);

test.run();
