// Issue 11 section 5: --on-end CMD, run once when a run ends, whatever the outcome.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, lines, sleep, slowTest, until, untilOnDisk, withHome, type TestHome } from '../helpers';

// The hook appends its environment to hooks.<name> (once per run it is one block) and prints a line.
const HOOK =
  'env | grep "^BGMON_" | sort >> "hooks.$BGMON_JOB"; echo "---" >> "hooks.$BGMON_JOB"; echo hook said $BGMON_STATUS';

function hookEnv(h: TestHome, name: string): Record<string, string>[] {
  const path = join(h.dir, `hooks.${name}`);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('---\n')
    .filter(Boolean)
    .map((block) =>
      Object.fromEntries(
        block
          .trim()
          .split('\n')
          .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
      ),
    );
}

async function hookRan(h: TestHome, name: string): Promise<Record<string, string>> {
  const [env] = await eventually(() => hookEnv(h, name).length > 0 && hookEnv(h, name), 15_000, `the hook of ${name}`);
  await sleep(300);
  for (let i = 0; i < 3; i++) await h.run('bgmon-status', ['--json']);
  assert.is(hookEnv(h, name).length, 1, `${name}: the hook ran once`);
  return env;
}

const afterMarker = (log: string) => readFileSync(log, 'utf8').split('--- bgmon: on-end ---\n');

test(
  "SUCCEEDED and FAILED: the hook runs once with the job's env, its output after the marker",
  withHome(async (h) => {
    const ok = await h.start('ok', ['sh', '-c', 'echo job output'], ['--on-end', HOOK]);
    const bad = await h.start('bad', ['sh', '-c', 'exit 4'], ['--on-end', HOOK]);
    assert.is(ok.on_end, HOOK);
    assert.is(ok.on_end_ran_at, null);
    assert.is((await h.run('bgmon-wait', ['ok', 'bad', '--timeout', '20s'])).code, 1);
    const env = await hookRan(h, 'ok');
    const keys = [
      'BGMON_EXIT_CODE',
      'BGMON_HOME',
      'BGMON_JOB',
      'BGMON_JOB_ID',
      'BGMON_LOG',
      'BGMON_SIGNAL',
      'BGMON_STATUS',
    ];
    assert.equal(Object.fromEntries(keys.map((k) => [k, env[k]])), {
      BGMON_EXIT_CODE: '0',
      BGMON_HOME: h.root,
      BGMON_JOB: 'ok',
      BGMON_JOB_ID: ok.id,
      BGMON_LOG: ok.log,
      BGMON_SIGNAL: '',
      BGMON_STATUS: 'SUCCEEDED',
    });
    await eventually(() => afterMarker(ok.log)[1] === 'hook said SUCCEEDED\n', 10_000, 'the hook output in the log');
    assert.is(afterMarker(ok.log)[0], 'job output\n');
    const b = await hookRan(h, 'bad');
    assert.equal([b.BGMON_STATUS, b.BGMON_EXIT_CODE, b.BGMON_SIGNAL, b.BGMON_JOB_ID], ['FAILED', '4', '', bad.id]);
    const disk = await untilOnDisk(h, 'bad', (r) => r.on_end_ran_at !== null);
    assert.is(disk.status, 'FAILED');
    assert.match(disk.on_end_ran_at, /^\d{4}-\d\d-\d\dT/);
  }),
);

test(
  'output that ends mid-line: the marker still starts a line of its own',
  withHome(async (h) => {
    const rec = await h.start('partial', ['printf', 'no newline'], ['--on-end', 'echo hook']);
    await until(h, 'partial', 'SUCCEEDED');
    const want = 'no newline\n--- bgmon: on-end ---\nhook\n';
    await eventually(() => readFileSync(rec.log, 'utf8') === want, 10_000, 'the hook output in the log');
  }),
);

test(
  'a link planted at the log path: the hook still runs, and nothing is written through the link',
  withHome(async (h) => {
    const release = join(h.dir, 'release');
    const target = join(h.dir, 'target');
    writeFileSync(target, 'precious\n');
    const hook = `touch ${join(h.dir, 'hook-ran')}; echo through-the-link`;
    const rec = await h.start(
      'linked',
      ['sh', '-c', `until [ -e ${release} ]; do sleep 0.05; done`],
      ['--on-end', hook],
    );
    unlinkSync(rec.log);
    symlinkSync(target, rec.log);
    writeFileSync(release, '');
    await until(h, 'linked', 'SUCCEEDED');
    await eventually(() => existsSync(join(h.dir, 'hook-ran')), 10_000, 'the hook to run');
    await sleep(200);
    assert.is(readFileSync(target, 'utf8'), 'precious\n');
  }),
);

test(
  'STOPPED: the hook sees STOPPED and the signal',
  withHome(async (h) => {
    await h.start('stopme', ['sleep', '30'], ['--on-end', HOOK]);
    const stop = await h.run('bgmon-stop', ['stopme']);
    assert.is(stop.code, 0, stop.stderr);
    const env = await hookRan(h, 'stopme');
    assert.equal([env.BGMON_STATUS, env.BGMON_EXIT_CODE, env.BGMON_SIGNAL], ['STOPPED', '', 'SIGTERM']);
  }),
);

slowTest(
  'CANCELLED, by the queue and at once: the hook runs though the job never did',
  withHome(async (h) => {
    await h.start('first', ['sh', '-c', 'sleep 0.5; exit 1']);
    await h.start('later', ['true'], ['--after', 'first', '--on-end', HOOK]);
    const env = await hookRan(h, 'later');
    assert.equal([env.BGMON_STATUS, env.BGMON_EXIT_CODE], ['CANCELLED', '']);
    const now = await h.start('now', ['true'], ['--after', 'first', '--on-end', HOOK]);
    assert.is(now.status, 'CANCELLED');
    assert.is((await hookRan(h, 'now')).BGMON_STATUS, 'CANCELLED');
    await h.start('held', ['sleep', '30']);
    await h.start('queued', ['true'], ['--after', 'held', '--on-end', HOOK]);
    assert.is((await h.run('bgmon-stop', ['queued'])).code, 0);
    assert.is((await hookRan(h, 'queued')).BGMON_STATUS, 'STOPPED', 'a queued job stopped');
    await h.run('bgmon-stop', ['held']);
  }),
);

slowTest(
  'a failing or hanging hook leaves the outcome unchanged; with --retry it runs after the last attempt only',
  withHome(async (h) => {
    await h.start('f', ['true'], ['--on-end', 'echo failing hook; exit 7']);
    await h.start('k', ['true'], ['--on-end', 'kill -KILL $$']);
    const wait = await h.run('bgmon-wait', ['f', 'k', '--timeout', '20s']);
    assert.is(wait.code, 0, wait.stdout);
    await untilOnDisk(h, 'f', (r) => r.on_end_ran_at !== null);
    await eventually(
      () => readFileSync(join(h.root, 'logs', 'f.log'), 'utf8').includes('failing hook'),
      10_000,
      'hook output',
    );
    assert.equal([(await h.status('f')).status, (await h.status('k')).status], ['SUCCEEDED', 'SUCCEEDED']);
    const r = await h.start('r', ['sh', '-c', 'exit 1'], ['--retry', '2', '--retry-delay', '50ms', '--on-end', HOOK]);
    await until(h, 'r', 'FAILED');
    const env = await hookRan(h, 'r');
    assert.equal([env.BGMON_STATUS, env.BGMON_EXIT_CODE], ['FAILED', '1']);
    assert.is(readFileSync(r.log, 'utf8').match(/--- bgmon: on-end ---/g)!.length, 1);
    const bad = await h.run('bgmon-start', ['--name', 'e', '--on-end', '', '--', 'true']);
    assert.is(bad.code, 2, bad.stderr);
  }),
);

test(
  'DEAD: the hook runs once the supervisor is gone',
  withHome(async (h) => {
    const rec = await h.start('dies', ['sleep', '30'], ['--on-end', HOOK]);
    process.kill(rec.sup_pid, 'SIGKILL');
    process.kill(-rec.pid, 'SIGKILL');
    await until(h, 'dies', 'DEAD');
    const env = await hookRan(h, 'dies');
    assert.equal([env.BGMON_STATUS, env.BGMON_EXIT_CODE], ['DEAD', '']);
    assert.is(lines((await h.run('bgmon-status', ['dies', '--json'])).stdout)[0].status, 'DEAD');
  }),
);

test(
  "the hook gets the job's environment whoever records the end: bgmon-stop, or a reader finding it DEAD",
  withHome(async (h) => {
    const hook = 'env > "env.$BGMON_JOB"';
    const envOf = (name: string) => readFileSync(join(h.dir, `env.${name}`), 'utf8').split('\n');
    const starter = { env: { STARTER: 'was-here' } };
    const reader = { env: { READER: 'must-not-leak' } };
    for (const name of ['stopped', 'dead'])
      await h.run(
        'bgmon-start',
        ['--name', name, '--env', 'SECRET=s3', '--on-end', hook, '--', 'sleep', '300'],
        starter,
      );
    const kept = (name: string) => join(h.root, 'run', `${name}@${h.record(name).id}.on-end-env`);
    assert.ok(existsSync(kept('stopped')), 'kept while the run lives');
    assert.is((await h.run('bgmon-stop', ['stopped', '--grace', '5s'], reader)).code, 0);
    const dead = h.record('dead');
    process.kill(dead.sup_pid, 'SIGKILL');
    process.kill(-dead.pid, 'SIGKILL');
    await eventually(async () => (await h.run('bgmon-status', ['dead', '--json'], reader)).stdout.includes('"DEAD"'));
    for (const name of ['stopped', 'dead']) {
      await eventually(() => existsSync(join(h.dir, `env.${name}`)), 15_000, `the hook of ${name}`);
      await eventually(() => envOf(name).includes(`BGMON_JOB=${name}`), 5_000, `${name}'s hook to finish`);
      const env = envOf(name);
      assert.ok(env.includes('SECRET=s3') && env.includes('STARTER=was-here'), `${name}: the job's environment`);
      assert.not.ok(
        env.some((l) => l.startsWith('READER=')),
        `${name}: not the reader's`,
      );
      assert.not.ok(existsSync(kept(name)), `${name}: the kept environment is removed once the hook started`);
    }
  }),
);

test.run();
