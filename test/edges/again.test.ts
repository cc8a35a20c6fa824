// bgmon-start --again: the same argv, cwd and --env values once more; secrets never printed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lines, slowTest, until, withHome, type TestHome } from '../helpers';

const SECRET = 'hunter2-a7f3c9';

function allFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? allFiles(join(dir, e.name)) : [join(dir, e.name)],
  );
}

async function ended(h: TestHome, name: string, id: string): Promise<any> {
  return until(h, name, (r) => r.id !== id || !['QUEUED', 'RUNNING'].includes(r.status)).then(() => h.status(name));
}

test(
  '--again repeats argv, cwd and --env values; the secret is never printed nor readable',
  withHome(async (h) => {
    const dir = h.subdir('work dir');
    const cmd = ['sh', '-c', 'echo "$TOKEN:$OTHER:$(pwd):$1"; exit 4', 'sh', 'arg with space'];
    const first = await h.start('job', cmd, ['--cwd', dir, '--env', `TOKEN=${SECRET}`, '--env', 'OTHER=x']);
    assert.equal(first.env_keys, ['TOKEN', 'OTHER']);
    await ended(h, 'job', first.id);
    const again = await h.run('bgmon-start', ['--again', 'job']);
    assert.is(again.code, 0, again.stderr);
    const rec = JSON.parse(again.stdout);
    assert.is.not(rec.id, first.id);
    assert.equal([rec.cmd, rec.cwd, rec.env_keys], [cmd, dir, ['TOKEN', 'OTHER']]);
    assert.is((await ended(h, 'job', rec.id)).exit_code, 4);
    assert.is(readFileSync(join(h.root, 'logs', 'job.log'), 'utf8'), `${SECRET}:x:${dir}:arg with space\n`);
    // --env beside --again replaces one key; --again NAME@ID starts that (past) run
    const over = await h.run('bgmon-start', ['--again', `job@${first.id}`, '--env', 'OTHER=y']);
    assert.is(over.code, 0, over.stderr);
    await ended(h, 'job', JSON.parse(over.stdout).id);
    assert.is(readFileSync(join(h.root, 'logs', 'job.log'), 'utf8'), `${SECRET}:y:${dir}:arg with space\n`);
    const printed = [
      (await h.run('bgmon-status', ['--history', '--json'])).stdout,
      (await h.run('bgmon-status', ['--history', '--table'])).stdout,
      (await h.run('bgmon-wait', ['job'])).stdout,
      JSON.stringify(first),
      again.stdout,
      over.stdout,
    ];
    for (const text of printed) assert.not.ok(text.includes(SECRET), `printed: ${text}`);
    for (const file of allFiles(h.root)) {
      const mode = statSync(file).mode & 0o777;
      const holds = readFileSync(file).includes(SECRET);
      if (holds) assert.is(mode, 0o600, `${file} holds the secret: mode ${mode.toString(8)}`);
      if (holds)
        assert.ok(
          /\/(run\/job@[^/]+\.env|logs\/job(@[^/]+)?\.log)$/.test(file),
          `the secret only in env files and the job's own log: ${file}`,
        );
    }
  }),
);

slowTest(
  '--again after STOPPED and CANCELLED; refused while RUNNING or QUEUED; unknown exits 3',
  withHome(async (h) => {
    const run = await h.start('r', ['sleep', '1000']);
    const busy = await h.run('bgmon-start', ['--again', 'r']);
    assert.is(busy.code, 1, busy.stderr);
    assert.match(busy.stderr, /RUNNING/);
    const q = await h.start('q', ['true'], ['--after', 'r']);
    assert.is(q.status, 'QUEUED');
    const queued = await h.run('bgmon-start', ['--again', 'q']);
    assert.is(queued.code, 1, queued.stderr);
    assert.match(queued.stderr, /QUEUED/);
    const stop = await h.run('bgmon-stop', ['r', '--grace', '0']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is((await until(h, 'q', 'CANCELLED')).status, 'CANCELLED');
    const r2 = await h.run('bgmon-start', ['--again', 'r']);
    assert.is(r2.code, 0, r2.stderr);
    assert.equal(JSON.parse(r2.stdout).cmd, run.cmd);
    // q waits for r's new run again (--after is repeated)
    const q2 = await h.run('bgmon-start', ['--again', 'q']);
    assert.is(q2.code, 0, q2.stderr);
    assert.equal([JSON.parse(q2.stdout).status, JSON.parse(q2.stdout).after], ['QUEUED', ['r']]);
    for (const [args, code] of [
      [['--again', 'nosuch'], 3],
      [['--again', 'r@nosuchid'], 3],
      [['--again', 'r', '--', 'ls'], 2],
      [['--again', '../x'], 2],
    ] as [string[], number][]) {
      const r = await h.run('bgmon-start', args);
      assert.is(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stdout, '');
    }
    assert.equal(
      lines((await h.run('bgmon-status', ['--json'])).stdout)
        .map((x) => x.name)
        .sort(),
      ['q', 'r'],
    );
  }),
);

test(
  '--again repeats the queue, retry settings and on-end hook; flags beside it override',
  withHome(async (h) => {
    const hook = 'echo "hook $BGMON_STATUS"';
    const first = await h.start(
      'q1',
      ['sh', '-c', 'exit 0'],
      [
        '--queue',
        'lane',
        '--retry',
        '2',
        '--retry-delay',
        '1500ms',
        '--retry-max-delay',
        '3s',
        '--retry-on',
        '1,SIGKILL',
        '--on-end',
        hook,
      ],
    );
    await h.run('bgmon-wait', ['q1']);
    const again = await h.run('bgmon-start', ['--again', 'q1']);
    assert.is(again.code, 0, again.stderr);
    const rec = JSON.parse(again.stdout);
    assert.is(rec.queue, 'lane');
    assert.equal(rec.retry, first.retry);
    assert.equal(rec.retry, { count: 2, delay_ms: 1500, max_delay_ms: 3000, on: ['1', 'SIGKILL'] });
    assert.is(rec.on_end, hook);
    await h.run('bgmon-wait', ['q1']);
    const over = await h.run('bgmon-start', ['--again', 'q1', '--retry', '5']);
    assert.is(over.code, 0, over.stderr);
    assert.is(JSON.parse(over.stdout).retry.count, 5, '--retry beside --again wins');
    assert.is(JSON.parse(over.stdout).queue, 'lane');
  }),
);

test.run();
