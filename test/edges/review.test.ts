// What an adversarial review of the merged features found: each case failed on the code before
// its fix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, readStat } from 'bgmon-state';
import { eventually, isAlive, lines, processes, sleep, slowTest, until, untilGone, withHome } from '../helpers';

slowTest(
  'stop of a QUEUED job that starts meanwhile stops it (never exit 0 with the job left running)',
  withHome(async (h) => {
    for (let i = 0; i < 8; i++) {
      await h.start(`a${i}`, ['sleep', '0.3'], ['--queue', `q${i}`]);
      await h.start(`b${i}`, ['sleep', '30'], ['--queue', `q${i}`]);
      await sleep(200 + 15 * i); // around a's end: b leaves the queue while stop looks at it
      const stop = await h.run('bgmon-stop', [`b${i}`, '--grace', '2s']);
      const [rec] = lines(stop.stdout);
      assert.is(stop.code, 0, stop.stderr);
      assert.is(rec.status, 'STOPPED', `round ${i}: ${stop.stdout}`);
      if (rec.pid !== null) assert.not.ok(isAlive(rec.pid), `round ${i}: b's process is gone`);
    }
  }),
);

test(
  '--retry: an attempt that outlives its SIGKILLed supervisor is RUNNING and can be stopped',
  withHome(async (h) => {
    const flag = join(h.dir, 'tried');
    const rec = await h.start(
      'k',
      ['sh', '-c', `if [ -e ${flag} ]; then exec sleep 30; else touch ${flag}; exit 1; fi`],
      ['--retry', '2', '--retry-delay', '100ms'],
    );
    // the second attempt, once its supervisor has recorded its pid (the line it writes right after
    // the fork: killed before it, the supervisor leaves no trace of that attempt to report)
    const endLines = () => {
      try {
        return readFileSync(join(h.root, 'jobs', `.k@${rec.id}.end`), 'latin1').split('\n');
      } catch {
        return [];
      }
    };
    const isAttempt2 = (st: { pid: number; session: number }) =>
      st.pid !== rec.pid &&
      st.session === st.pid &&
      environHas(st.pid, `BGMON_JOB_ID=${rec.id}`) &&
      endLines().includes(`pid ${st.pid}`);
    const [attempt2] = await eventually(
      () => {
        const found = processes(isAttempt2);
        return found.length > 0 && found;
      },
      15_000,
      'the second attempt',
    );
    process.kill(rec.sup_pid, 'SIGKILL');
    await untilGone([rec.sup_pid], 'the supervisor');
    const now = await h.status('k');
    const endFile = readFileSync(join(h.root, 'jobs', `.k@${rec.id}.end`), 'latin1').trim();
    assert.is(
      now.status,
      'RUNNING',
      `${JSON.stringify(now)} end file: ${endFile} attempt2: ${JSON.stringify(attempt2)}`,
    );
    assert.is(now.pid, attempt2.pid);
    const stop = await h.run('bgmon-stop', ['k', '--grace', '2s']);
    assert.is(stop.code, 0, stop.stderr);
    await untilGone([attempt2.pid], 'the second attempt');
  }),
);

test(
  '--retry: a stopped supervisor holding an ended attempt is not DEAD; the run ends as it truly does',
  withHome(async (h) => {
    const release = join(h.dir, 'release');
    const flag = join(h.dir, 'failed-once');
    const script = `until [ -e ${release} ]; do sleep 0.02; done; [ -e ${flag} ] && exit 0; touch ${flag}; exit 1`;
    const rec = await h.start('zs', ['sh', '-c', script], ['--retry', '2', '--retry-delay', '100ms']);
    process.kill(rec.sup_pid, 'SIGSTOP');
    try {
      writeFileSync(release, '');
      await eventually(() => readStat(rec.pid)?.state === 'Z', 10_000, 'the first attempt to end (a zombie)');
      const early = await h.run('bgmon-wait', ['zs', '--timeout', '1s']);
      assert.is(early.code, 124, `not decided while the supervisor is stopped: ${early.stdout}`);
    } finally {
      process.kill(rec.sup_pid, 'SIGCONT');
    }
    const wait = await h.run('bgmon-wait', ['zs']);
    assert.is(wait.code, 0, wait.stdout);
    assert.is(lines(wait.stdout)[0].attempt, 2);
  }),
);

test(
  'a queued job whose launch was interrupted (its end file left behind) still starts',
  withHome(async (h) => {
    const release = join(h.dir, 'release');
    await h.start('first', ['sh', '-c', `until [ -e ${release} ]; do sleep 0.02; done`]);
    const queued = await h.start('second', ['sh', '-c', 'echo ran'], ['--after', 'first']);
    // what a launch killed after reserving the run's files leaves
    writeFileSync(join(h.root, 'jobs', `.second@${queued.id}.end`), ' '.repeat(32));
    writeFileSync(join(h.root, 'jobs', `.second@${queued.id}.spare`), ' '.repeat(64));
    writeFileSync(release, '');
    const wait = await h.run('bgmon-wait', ['second']);
    assert.is(wait.code, 0, wait.stdout);
    assert.is(readFileSync(join(h.root, 'logs', 'second.log'), 'utf8'), 'ran\n');
  }),
);

test(
  '--until never matches what bgmon wrote into the log (the on-end hook and its output)',
  withHome(async (h) => {
    await h.start('u', ['sh', '-c', 'echo working; exit 3'], ['--on-end', 'echo "$BGMON_JOB ended $BGMON_STATUS"']);
    const log = join(h.root, 'logs', 'u.log');
    await eventually(
      () => existsSync(log) && readFileSync(log, 'utf8').includes('u ended FAILED'),
      15_000,
      'the hook output',
    );
    const wait = await h.run('bgmon-wait', ['--until', 'ended', 'u']);
    assert.is(wait.code, 3, `the job's own failure, not a match in the hook's output: ${wait.stdout}`);
    const own = await h.run('bgmon-wait', ['--until', 'working', 'u']);
    assert.is(own.code, 0);
  }),
);

test(
  '--on-end runs for a run that died unseen (DEAD) and is replaced by a rerun',
  withHome(async (h) => {
    const out = join(h.dir, 'hooked');
    const rec = await h.start('hx', ['sleep', '30'], ['--on-end', `echo "$BGMON_STATUS" > ${out}`]);
    process.kill(rec.sup_pid, 'SIGKILL');
    process.kill(rec.pid, 'SIGKILL');
    await untilGone([rec.sup_pid, rec.pid], 'job and supervisor');
    await h.start('hx', ['true']); // nobody read the DEAD run before this
    await eventually(() => existsSync(out), 15_000, 'the hook of the replaced run');
    assert.is(readFileSync(out, 'utf8'), 'DEAD\n');
    await until(h, 'hx', 'SUCCEEDED');
  }),
);

test.run();
