// An adversarial read of the tail, exec-limit, lazy-tty and slow-test commits (helper review3).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { binPath, eventually, sleep, slowTest, spawnCollect, withHome, type TestHome } from '../helpers';

const WORD = 100_000;
/** A command of `words` words of 100 kB (each under the kernel's 128 KiB per word) and a last one of `tail` bytes. */
const bigCmd = (cmd0: string, words: number, tail: number) => [
  cmd0,
  ...Array(words).fill('x'.repeat(WORD)),
  'y'.repeat(tail),
];

/**
 * The command whose launch takes exactly what the kernel allows, as bgmon-start - counts it: read off
 * its refusal of a 6.4 MB line (over every limit), since the count grows by a word's bytes and its
 * pointer for each word dropped, and byte for byte with the last word.
 */
async function atLimit(h: TestHome, fields: object, cmd0: string): Promise<{ words: number; tail: number }> {
  const probe = await h.run('bgmon-start', ['-'], {
    input: `${JSON.stringify({ ...fields, cmd: bigCmd(cmd0, 64, WORD) })}\n`,
  });
  const m = /take (\d+) bytes; the kernel takes (\d+)\n$/.exec(probe.stderr);
  assert.ok(probe.code === 2 && m, probe.stderr);
  const excess = Number(m![1]) - Number(m![2]);
  const perWord = WORD + 1 + 8;
  let words = 64 - Math.floor(excess / perWord);
  let tail = WORD - (excess % perWord);
  if (tail < 0) [words, tail] = [words - 1, tail + perWord];
  return { words, tail };
}

const batch = (h: TestHome, fields: object, cmd: string[]) =>
  h.run('bgmon-start', ['-'], { input: `${JSON.stringify({ ...fields, cmd })}\n` });

slowTest(
  'start -: what the exec check lets through runs, in a long --cwd and with a long command path too',
  withHome(async (h) => {
    // 30 levels of 99 bytes: the job's shell exports PWD as this directory, longer than the caller's
    let deep = h.dir;
    for (let i = 0; i < 30; i++) deep = join(deep, 'd'.repeat(99));
    mkdirSync(deep, { recursive: true });
    const trueBin = (process.env.PATH ?? '/usr/bin')
      .split(':')
      .map((dir) => join(dir, 'true'))
      .find(existsSync);
    symlinkSync(trueBin!, join(deep, 't'));
    const cases: [string, object, string][] = [
      ['cwd', { name: 'incwd', cwd: deep }, 'true'],
      // the job's exec takes its path twice (file name and argv[0])
      ['path', { name: 'longpath' }, join(deep, 't')],
    ];
    for (const [what, fields, cmd0] of cases) {
      const { words, tail } = await atLimit(h, fields, cmd0);
      const over = await batch(h, fields, bigCmd(cmd0, words, tail + 1));
      assert.is(over.code, 2, `${what}: ${over.stderr}`);
      const fits = await batch(h, fields, bigCmd(cmd0, words, tail));
      assert.is(fits.code, 0, `${what}: ${fits.stderr}`);
      const name = (fields as { name: string }).name;
      const waited = await h.run('bgmon-wait', [name]);
      assert.is(waited.code, 0, `${what}: ${readFileSync(join(h.root, 'logs', `${name}.log`), 'utf8').slice(0, 200)}`);
    }
  }),
);

test(
  'a rerun the kernel could not exec leaves the replaced run as it was: its record, its log, no history',
  withHome(async (h) => {
    await h.start('X', ['sh', '-c', 'echo first-run']);
    assert.is((await h.run('bgmon-wait', ['X'])).code, 0);
    const record = readFileSync(join(h.root, 'jobs', 'X.json'), 'utf8');
    const { words, tail } = await atLimit(h, { name: 'X' }, 'true');
    // over the supervisor's limit, yet short enough for bgmon-start's own exec
    const r = await h.run('bgmon-start', ['--name', 'X', '--', ...bigCmd('true', words, tail + 1000)]);
    assert.equal(
      [r.code, r.stdout, r.stderr],
      [1, '', 'bgmon-start: cannot start the job: the command line is longer than the kernel allows\n'],
    );
    assert.is(readFileSync(join(h.root, 'jobs', 'X.json'), 'utf8'), record);
    assert.equal(readdirSync(join(h.root, 'logs')), ['X.log']);
    assert.ok(!existsSync(join(h.root, 'history')) || readdirSync(join(h.root, 'history')).length === 0, 'no history');
    const t = await h.run('bgmon-tail', ['X']);
    assert.equal([t.code, t.stdout, t.stderr], [0, 'first-run\n', '']);
  }),
);

slowTest(
  "tail -f: a log deleted or replaced by a link while followed is read on; the job's later output is printed",
  withHome(async (h) => {
    for (const replace of ['delete', 'link']) {
      const go = join(h.dir, `go-${replace}`);
      await h.start('a', ['sh', '-c', `echo one; while [ ! -e ${go} ]; do sleep 0.02; done; echo two`]);
      const { child, done } = spawnCollect(
        process.execPath,
        [binPath('bgmon-tail'), '-f', 'a'],
        { env: h.env, cwd: h.dir },
        { timeoutMs: 60_000 },
      );
      let seen = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
      });
      // 'one' printed: bgmon-tail holds the log open
      await eventually(() => seen.includes('one'), 20_000, 'bgmon-tail to print the first line');
      const log = join(h.root, 'logs', 'a.log');
      if (replace === 'delete') unlinkSync(log);
      else {
        renameSync(log, join(h.dir, 'moved.log'));
        symlinkSync('/etc/passwd', log);
      }
      // the job writes on only after bgmon-tail has looked at the path again (it re-checks every 250 ms)
      await sleep(1500);
      writeFileSync(go, '');
      const r = await done;
      assert.equal([r.code, r.stdout, r.stderr], [0, 'one\ntwo\n', ''], replace);
    }
  }),
);

test(
  'start -: --retry and --on-end beside "-" hold for every line; --again with - is a usage error',
  withHome(async (h) => {
    const line = `${JSON.stringify({ name: 'r', cmd: ['sh', '-c', 'echo run; exit 3'] })}\n`;
    const flags = ['--retry', '1', '--retry-delay', '0', '--on-end', 'echo hook-ran'];
    const r = await h.run('bgmon-start', [...flags, '-'], { input: line });
    assert.is(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout);
    assert.equal([rec.retry?.count, rec.on_end], [1, 'echo hook-ran']);
    assert.is((await h.run('bgmon-wait', ['r'])).code, 3);
    const log = join(h.root, 'logs', 'r.log');
    await eventually(() => readFileSync(log, 'utf8').includes('hook-ran'), 20_000, 'the hook to run');
    assert.is(readFileSync(log, 'utf8').split('run\n').length - 1, 2, 'two attempts');
    const again = await h.run('bgmon-start', ['--again', 'r', '-'], { input: line });
    assert.equal([again.code, again.stdout], [2, '']);
    assert.is(again.stderr, 'bgmon-start: --again: starts one run again, not with -\n');
  }),
);

test(
  'a run whose log a rerun has moved aside, its record not yet replaced (caught or killed midway): still printed',
  withHome(async (h) => {
    const rec = await h.start('X', ['sh', '-c', 'echo first-run']);
    assert.is((await h.run('bgmon-wait', ['X'])).code, 0);
    // what bgmon-start does first when it reruns X: the log goes to X@ID.log, then the new record is written
    renameSync(join(h.root, 'logs', 'X.log'), join(h.root, 'logs', `X@${rec.id}.log`));
    for (const args of [['X'], ['-f', 'X'], [`X@${rec.id}`]]) {
      const r = await h.run('bgmon-tail', args);
      assert.equal([r.code, r.stdout, r.stderr], [0, 'first-run\n', ''], args.join(' '));
    }
    const json = await h.run('bgmon-tail', ['--json', 'X']);
    assert.equal([json.code, json.stderr], [0, '']);
    assert.equal(JSON.parse(json.stdout), { name: 'X', id: rec.id, line: 'first-run', offset: 10 });
  }),
);

test.run();
