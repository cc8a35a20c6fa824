// Hostile input: every case gets one line on stderr, its documented exit code, no partial
// state and no signal sent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  isAlive,
  lines,
  listDir,
  sleep,
  slowTest,
  untilOnDisk,
  withHome,
  type Result,
  type TestHome,
} from '../helpers';

const HOSTILE_NAMES = [
  '../x',
  '/abs',
  'a/b',
  '.',
  '..',
  '',
  'a'.repeat(129),
  'a\nb',
  'ａｂｃ',
  'раb',
  'a b',
  '-rf',
  'a*b/c',
  'x\u0000y',
];
const COMMANDS: [string, string[]][] = [
  ['bgmon-status', []],
  ['bgmon-stop', ['--grace', '0']],
  ['bgmon-tail', []],
  ['bgmon-wait', ['--timeout', '1s']],
  ['bgmon-rm', []],
];

function oneLine(r: Result, code: number, what: string): void {
  assert.is(r.code, code, `${what}: ${r.stderr}`);
  assert.is(r.stdout, '', `${what}: nothing on stdout`);
  assert.is(r.stderr.split('\n').length, 2, `${what}: exactly one line on stderr: ${JSON.stringify(r.stderr)}`);
}

/** A running job and a snapshot of the home, to prove a bad call changed nothing. */
async function bystander(h: TestHome): Promise<{ rec: any; unchanged: () => void }> {
  const rec = await h.start('victim', ['sleep', '1000']);
  const before = JSON.stringify([
    listDir(join(h.root, 'jobs')),
    listDir(join(h.root, 'logs')),
    listDir(join(h.root, 'run')),
    h.record('victim'),
  ]);
  return {
    rec,
    unchanged: () => {
      assert.ok(isAlive(rec.pid), 'the running job was not signalled');
      assert.is(
        JSON.stringify([
          listDir(join(h.root, 'jobs')),
          listDir(join(h.root, 'logs')),
          listDir(join(h.root, 'run')),
          h.record('victim'),
        ]),
        before,
        'no state changed',
      );
    },
  };
}

slowTest(
  'hostile names on every command: exit 2, one line, nothing touched',
  withHome(async (h) => {
    const { unchanged } = await bystander(h);
    for (const name of HOSTILE_NAMES) {
      if (name.includes('\u0000')) continue; // argv cannot carry NUL; it comes through stdin below
      oneLine(await h.run('bgmon-start', ['--name', name, '--', 'true']), 2, `start ${JSON.stringify(name)}`);
      for (const [bin, extra] of COMMANDS)
        oneLine(await h.run(bin, [name, ...extra]), 2, `${bin} ${JSON.stringify(name)}`);
      oneLine(
        await h.run('bgmon-start', ['--name', 'ok', '--after', name, '--', 'true']),
        2,
        `--after ${JSON.stringify(name)}`,
      );
    }
    for (const name of HOSTILE_NAMES) {
      for (const [bin, extra] of COMMANDS) {
        const input = `{"name":"victim"}\n${JSON.stringify({ name })}\n`;
        oneLine(
          await h.run(bin, bin === 'bgmon-status' ? ['-'] : extra, { input }),
          2,
          `${bin} stdin ${JSON.stringify(name)}`,
        );
      }
    }
    unchanged();
  }),
);

test(
  'a BGMON_HOME that belongs to another user, or that others can write, is refused',
  withHome(async (h) => {
    const foreign = join(h.dir, 'foreign');
    mkdirSync(foreign, { mode: 0o700 });
    chownSync(foreign, 65534, 65534);
    const link = join(h.dir, 'link');
    symlinkSync(foreign, link);
    const open = h.subdir('open');
    chmodSync(open, 0o777);
    for (const home of [link, foreign, open]) {
      for (const [bin, args] of [
        ['bgmon-start', ['--name', 'x', '--', 'true']],
        ['bgmon-status', []],
        ['bgmon-rm', ['--finished']],
      ] as [string, string[]][]) {
        const r = await h.run(bin, args, { env: { BGMON_HOME: home } });
        oneLine(r, 1, `${bin} in ${home}`);
        assert.match(r.stderr, /refusing BGMON_HOME/);
      }
    }
    assert.equal(readdirSync(foreign), [], "nothing written into the other user's directory");
    assert.equal(readdirSync(open), []);
    mkdirSync(join(h.dir, 'mine'), { mode: 0o700 });
    symlinkSync(join(h.dir, 'mine'), join(h.dir, 'mylink'));
    assert.is(
      (await h.run('bgmon-start', ['--name', 'x', '--', 'true'], { env: { BGMON_HOME: join(h.dir, 'mylink') } })).code,
      0,
      'a symlink to a home of your own is fine',
    );
    await h.killHome(join(h.dir, 'mylink'));
  }),
);

test(
  'corrupt record files: empty, truncated, not JSON, wrong shape, enormous',
  withHome(async (h) => {
    await h.start('good', ['true']);
    const good = await untilOnDisk(h, 'good', 'SUCCEEDED');
    const jobs = join(h.root, 'jobs');
    const bad: Record<string, string | Buffer> = {
      empty: '',
      truncated: JSON.stringify({ ...good, name: 'truncated' }).slice(0, 60),
      notjson: 'hello world\n',
      array: '[1,2,3]\n',
      shape: JSON.stringify({ v: 1, name: 'shape' }) + '\n',
      mismatch: JSON.stringify({ ...good, name: 'someone-else' }) + '\n',
      version: JSON.stringify({ ...good, name: 'version', v: 2 }) + '\n',
      enormous: Buffer.alloc(20 * 1024 * 1024, 32),
    };
    for (const [name, content] of Object.entries(bad)) {
      h.handWritten.add(name);
      writeFileSync(join(jobs, `${name}.json`), content, { mode: 0o600 });
    }
    const r = await h.run('bgmon-status', ['--json']);
    assert.is(r.code, 1);
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['good'],
    );
    const complaints = r.stderr.trim().split('\n');
    assert.is(complaints.length, Object.keys(bad).length, r.stderr);
    for (const name of Object.keys(bad))
      assert.ok(
        complaints.some((l) => l.startsWith(`bgmon-status: ${join(jobs, name)}.json: corrupt record (`)),
        name,
      );
    // acting on a corrupt job is refused with one line, exit 1, and the file is left for the user
    // (except bgmon-rm NAME, which removes it: see edges/select)
    for (const [bin, args] of [
      ['bgmon-start', ['--name', 'empty', '--', 'true']],
      ['bgmon-stop', ['empty']],
      ['bgmon-wait', ['enormous']],
    ] as [string, string[]][]) {
      oneLine(await h.run(bin, args), 1, `${bin} ${args.join(' ')}`);
    }
    assert.ok(existsSync(join(jobs, 'empty.json')));
    assert.is((await h.run('bgmon-status', ['good'])).code, 0, 'a good job is still fine on its own');
  }),
);

slowTest(
  'NDJSON on stdin: garbage lines, 10 MB lines, unknown names',
  withHome(async (h) => {
    const { unchanged } = await bystander(h);
    const cases: [string, number][] = [
      ['{"name":"victim"}\ngarbage\n', 2],
      ['{"name":"victim"}\n{"name":"victim"', 2],
      [`{"name":"victim"}\n{"name":"victim","pad":"${'x'.repeat(10 * 1024 * 1024)}"}\n`, 2],
      ['{"name":"victim"}\n{"name":"nobody-here"}\n', 3],
      ['\u0000\n', 2],
      ['{"name":"vic\\u0000tim"}\n', 2],
    ];
    for (const [input, code] of cases) {
      for (const bin of ['bgmon-stop', 'bgmon-wait', 'bgmon-tail', 'bgmon-rm'])
        oneLine(
          await h.run(
            bin,
            bin === 'bgmon-wait' ? ['--timeout', '1s'] : ['--grace', '0'].filter(() => bin === 'bgmon-stop'),
            { input },
          ),
          code,
          `${bin} <<< ${input.slice(0, 40)}`,
        );
    }
    unchanged();
  }),
);

slowTest(
  'bad durations and signals: exit 2, nothing signalled',
  withHome(async (h) => {
    const { unchanged } = await bystander(h);
    for (const v of ['-1', 'abc', '1e309', 'Infinity', '10x', '']) {
      oneLine(await h.run('bgmon-stop', ['victim', `--grace=${v}`]), 2, `--grace ${v}`);
      oneLine(await h.run('bgmon-wait', ['victim', `--timeout=${v}`]), 2, `--timeout ${v}`);
      oneLine(await h.run('bgmon-rm', ['--finished', `--older-than=${v}`]), 2, `--older-than ${v}`);
    }
    for (const s of ['BOGUS', '0', '65', '-9', 'SIG', ''])
      oneLine(await h.run('bgmon-stop', ['victim', `--signal=${s}`]), 2, `--signal ${s}`);
    oneLine(await h.run('bgmon-start', ['--name', 'e', '--env', 'no-equals', '--', 'true']), 2, '--env without =');
    oneLine(await h.run('bgmon-start', ['--name', 'c', '--cwd', '/nonexistent', '--', 'true']), 2, '--cwd missing');
    oneLine(await h.run('bgmon-start', ['--name', 'n']), 2, 'no command');
    oneLine(await h.run('bgmon-tail', ['victim', '-n', '-3']), 2, '-n negative');
    await sleep(100);
    unchanged();
  }),
);

test.run();
