// Issue 11 section 3: --retry, --retry-delay, --retry-max-delay, --retry-on, with real jobs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from 'bgmon-state';
import {
  childrenOf,
  eventually,
  isAlive,
  lines,
  rssKb,
  sleep,
  slowTest,
  until,
  untilGone,
  untilOnDisk,
  withHome,
  type TestHome,
} from '../helpers';

const markers = (log: string) =>
  readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('--- bgmon: attempt '));
const waiting = (rec: any) => rec.status === 'RUNNING' && typeof rec.next_attempt_at === 'string';

const comm = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'latin1').trim();
  } catch {
    return '';
  }
};

/**
 * The supervisor's `sleep` between attempts (not one of `seen`), once it runs: the record says the
 * run waits (next_attempt_at) as soon as the supervisor has written the attempt's end, a moment
 * before it forks that sleep.
 */
async function delaySleep(rec: any, seen: number[] = []): Promise<number> {
  const [pid] = await eventually(
    () => {
      const found = childrenOf(rec.sup_pid).filter((p) => !seen.includes(p) && comm(p) === 'sleep');
      return found.length > 0 && found;
    },
    20_000,
    'the supervisor to wait between attempts',
  );
  return pid;
}

/** Holds a run's wait between attempts: stops the supervisor's sleep, so it waits while the test looks. */
async function holdDelay(rec: any, seen: number[]): Promise<{ pid: number; resume: () => void }> {
  const pid = await delaySleep(rec, seen);
  process.kill(pid, 'SIGSTOP');
  await eventually(
    () => {
      const st = readStat(pid);
      if (!st || st.state === 'Z') throw new Error(`the wait (sleep ${pid}) ended before it was held`);
      return st.state === 'T';
    },
    10_000,
    'the wait to be held',
  );
  return { pid, resume: () => process.kill(pid, 'SIGCONT') };
}

/** A command that counts its runs in `file` and exits with the n-th of `codes` (the last one after). */
function counting(h: TestHome, file: string, codes: number[]): string[] {
  const path = join(h.dir, file);
  writeFileSync(path, '0\n');
  const cases = codes.map((c, i) => `${i + 1}) exit ${c};;`).join(' ');
  return [
    'sh',
    '-c',
    `n=$(cat ${path}); n=$((n+1)); echo $n > ${path}; echo "run $n"; case $n in ${cases} *) exit ` +
      `${codes[codes.length - 1]};; esac`,
  ];
}

test(
  'fails twice, then succeeds: SUCCEEDED at attempt 3, three attempts kept, three markers in the log',
  withHome(async (h) => {
    const rec = await h.start('flaky', counting(h, 'count', [1, 1, 0]), ['--retry', '3', '--retry-delay', '100ms']);
    assert.equal(rec.retry, { count: 3, delay_ms: 100, max_delay_ms: 3_600_000, on: null });
    assert.is(rec.attempt, 1);
    const wait = await h.run('bgmon-wait', ['flaky', '--timeout', '30s']);
    assert.is(wait.code, 0, wait.stderr + wait.stdout);
    const [done] = lines(wait.stdout);
    assert.is(done.status, 'SUCCEEDED');
    assert.is(done.attempt, 3);
    assert.equal(
      done.attempts.map((a: any) => [a.attempt, a.exit_code, a.signal]),
      [
        [1, 1, null],
        [2, 1, null],
        [3, 0, null],
      ],
    );
    assert.is(done.attempts[2].ended_at, done.ended_at);
    assert.is(done.next_attempt_at, null);
    assert.equal(markers(rec.log), [
      '--- bgmon: attempt 1 of 4 ---',
      '--- bgmon: attempt 2 of 4 ---',
      '--- bgmon: attempt 3 of 4 ---',
    ]);
    assert.match(readFileSync(rec.log, 'utf8'), /attempt 1 of 4 ---\nrun 1\n--- bgmon: attempt 2 of 4 ---\nrun 2\n/);
    const disk = await untilOnDisk(h, 'flaky', 'SUCCEEDED');
    assert.equal(
      disk.attempts.map((a: any) => a.exit_code),
      [1, 1, 0],
    );
    await untilGone([rec.sup_pid], 'the supervisor');
    assert.equal(readdirSync(join(h.root, 'jobs')), ['flaky.json'], 'end and spare files consumed by the fold');
  }),
);

test(
  '--retry-on: exit 2 is retried, exit 3 is not; the last attempt decides the outcome',
  withHome(async (h) => {
    await h.start('on', counting(h, 'c1', [2, 2, 3, 0]), [
      '--retry',
      '5',
      '--retry-delay',
      '50ms',
      '--retry-on',
      '2,SIGKILL',
    ]);
    const wait = await h.run('bgmon-wait', ['on', '--timeout', '30s']);
    assert.is(wait.code, 3, wait.stdout);
    const [rec] = lines(wait.stdout);
    assert.is(rec.status, 'FAILED');
    assert.equal(rec.retry.on, ['2', 'SIGKILL']);
    assert.equal(
      rec.attempts.map((a: any) => a.exit_code),
      [2, 2, 3],
    );
    assert.is(readFileSync(join(h.dir, 'c1'), 'utf8'), '3\n', 'no fourth run');
    await h.start('killed', ['sh', '-c', 'kill -KILL $$'], ['--retry', '1', '--retry-delay', '0', '--retry-on', '9']);
    const k = await h.run('bgmon-wait', ['killed', '--timeout', '30s']);
    assert.is(k.code, 128 + 9);
    assert.equal(
      lines(k.stdout)[0].attempts.map((a: any) => a.signal),
      ['SIGKILL'],
      '9 is exit code 9, not SIGKILL',
    );
    await h.start('nine', ['sh', '-c', 'kill -KILL $$'], ['--retry', '1', '--retry-delay', '0', '--retry-on', 'KILL']);
    assert.is((await h.run('bgmon-wait', ['nine', '--timeout', '30s'])).code, 128 + 9);
    assert.is(h.record('nine').attempts.length, 2, 'KILL retries a SIGKILLed attempt');
  }),
);

test(
  'delays: the first as given, doubling, capped; next_attempt_at while waiting',
  withHome(async (h) => {
    const rec = await h.start(
      'slow',
      ['sh', '-c', 'exit 1'],
      ['--retry', '2', '--retry-delay', '1s', '--retry-max-delay', '1500ms'],
    );
    // each wait is held (its sleep stopped) while bgmon-status looks: a reader polled from here
    // may take longer than the 1.5 s wait itself on a loaded machine, and miss it
    const firstWait = await holdDelay(rec, []);
    const first = await h.status('slow');
    assert.ok(waiting(first) && first.attempt === 2, JSON.stringify(first));
    assert.is(Date.parse(first.next_attempt_at) - Date.parse(first.attempts[0].ended_at), 1000);
    firstWait.resume();
    const secondWait = await holdDelay(rec, [firstWait.pid]);
    const second = await h.status('slow');
    secondWait.resume();
    assert.ok(waiting(second) && second.attempt === 3, JSON.stringify(second));
    assert.is(Date.parse(second.next_attempt_at) - Date.parse(second.attempts[1].ended_at), 1500, 'doubled, capped');
    const wait = await h.run('bgmon-wait', ['slow', '--timeout', '30s']);
    const [done] = lines(wait.stdout);
    assert.is(done.status, 'FAILED');
    const t = done.attempts.map((a: any) => Date.parse(a.ended_at));
    assert.ok(
      t[1] - t[0] >= 950 && t[2] - t[1] >= 1450,
      `attempts ended at ${done.attempts.map((a: any) => a.ended_at)}`,
    );
    assert.is(markers(rec.log).length, 3);
  }),
);

slowTest(
  'an attempt whose output ends mid-line: the next marker still starts a line of its own',
  withHome(async (h) => {
    const rec = await h.start(
      'partial',
      ['sh', '-c', 'printf partial; exit 1'],
      ['--retry', '1', '--retry-delay', '100ms'],
    );
    assert.is((await h.run('bgmon-wait', ['partial', '--timeout', '30s'])).code, 1);
    assert.is(
      readFileSync(rec.log, 'utf8'),
      '--- bgmon: attempt 1 of 2 ---\npartial\n--- bgmon: attempt 2 of 2 ---\npartial',
    );
    // a log emptied during the wait: the next marker is its first line, no blank line before it
    const cut = await h.start('cut', ['sh', '-c', 'printf partial; exit 1'], ['--retry', '1', '--retry-delay', '2s']);
    await until(h, 'cut', waiting);
    writeFileSync(cut.log, '');
    assert.is((await h.run('bgmon-wait', ['cut', '--timeout', '30s'])).code, 1);
    assert.is(readFileSync(cut.log, 'utf8'), '--- bgmon: attempt 2 of 2 ---\npartial');
  }),
);

test(
  'bgmon-stop during the wait: STOPPED at once, no further attempt, the supervisor gone',
  withHome(async (h) => {
    const path = join(h.dir, 'runs');
    const rec = await h.start(
      'wait',
      ['sh', '-c', `echo x >> ${path}; exit 1`],
      ['--retry', '3', '--retry-delay', '60s'],
    );
    await until(h, 'wait', waiting);
    const sleeper = [await delaySleep(rec)];
    assert.equal(childrenOf(rec.sup_pid), sleeper, 'the supervisor waits in one sleep');
    const stop = await h.run('bgmon-stop', ['wait']);
    assert.is(stop.code, 0, stop.stderr);
    assert.ok(stop.ms < 10_000, `${stop.ms} ms`);
    const [stopped] = lines(stop.stdout);
    assert.is(stopped.status, 'STOPPED');
    assert.is(stopped.exit_code, 1, 'the exit code of the attempt that ran');
    assert.is(stopped.next_attempt_at, null);
    assert.equal(
      stopped.attempts.map((a: any) => a.attempt),
      [1],
    );
    await untilGone([rec.sup_pid, ...sleeper], 'the supervisor and its sleep');
    await sleep(500);
    assert.is(readFileSync(path, 'utf8'), 'x\n', 'ran once');
    assert.is(markers(rec.log).length, 1);
    assert.is((await h.status('wait')).status, 'STOPPED');
    assert.equal(
      readdirSync(join(h.root, 'run')).filter((f) => f.startsWith('wait')),
      [],
      'stop markers cleared',
    );
  }),
);

test(
  'bgmon-stop during an attempt: STOPPED, never retried',
  withHome(async (h) => {
    const rec = await h.start('busy', ['sleep', '30'], ['--retry', '3', '--retry-delay', '50ms']);
    const stop = await h.run('bgmon-stop', ['busy']);
    assert.is(stop.code, 0, stop.stderr);
    const [stopped] = lines(stop.stdout);
    assert.is(stopped.status, 'STOPPED');
    assert.is(stopped.signal, 'SIGTERM');
    await untilGone([rec.sup_pid], 'the supervisor');
    assert.is(markers(rec.log).length, 1, 'no second attempt');
    assert.equal(
      h.record('busy').attempts.map((a: any) => a.signal),
      ['SIGTERM'],
    );
  }),
);

slowTest(
  'the supervisor SIGKILLed between attempts: DEAD (no made-up outcome), and the queue moves on',
  withHome(async (h) => {
    const rec = await h.start('doomed', ['sh', '-c', 'exit 1'], ['--retry', '3', '--retry-delay', '60s']);
    await h.start('next', ['true'], ['--after', 'doomed']);
    await until(h, 'doomed', waiting);
    const sleeper = [await delaySleep(rec)];
    process.kill(rec.sup_pid, 'SIGKILL');
    sleeper.forEach((pid) => process.kill(pid, 'SIGKILL'));
    await untilGone([rec.sup_pid, ...sleeper], 'the supervisor');
    const dead = await h.status('doomed');
    assert.is(dead.status, 'DEAD');
    assert.is(dead.exit_code, null);
    assert.equal(
      dead.attempts.map((a: any) => a.exit_code),
      [1],
      'the attempt that ended is kept',
    );
    const wait = await h.run('bgmon-wait', ['next', '--timeout', '20s']);
    assert.is(wait.code, 1, wait.stdout);
    assert.is(lines(wait.stdout)[0].status, 'CANCELLED');
  }),
);

slowTest(
  'the supervisor SIGKILLed while an attempt runs: RUNNING while the job lives, then DEAD',
  withHome(async (h) => {
    const flag = join(h.dir, 'go');
    // the second attempt ends when the test releases it, not after a second the load could outlast
    const release = join(h.dir, 'release');
    const second = `while [ ! -e ${release} ]; do sleep 0.05; done`;
    const job = await h.start(
      'mid',
      ['sh', '-c', `[ -e ${flag} ] && exec sh -c '${second}'; touch ${flag}; exit 1`],
      ['--retry', '2', '--retry-delay', '50ms'],
    );
    const attempt = await until(h, 'mid', (r) => r.status === 'RUNNING' && r.attempt === 2 && r.pid !== job.pid);
    process.kill(job.sup_pid, 'SIGKILL');
    await untilGone([job.sup_pid], 'the supervisor');
    assert.is((await h.status('mid')).status, 'RUNNING', 'the attempt still runs');
    writeFileSync(release, '');
    await untilGone([attempt.pid], 'the second attempt');
    const dead = await until(h, 'mid', 'DEAD');
    assert.is(dead.exit_code, null);
    assert.ok(!isAlive(attempt.pid));
  }),
);

slowTest(
  'supervision memory with --retry and --on-end: under 2 MB while the job runs and while it waits',
  withHome(async (h) => {
    const rec = await h.start(
      'mem',
      ['sh', '-c', 'sleep 1; exit 1'],
      ['--retry', '1', '--retry-delay', '30s', '--on-end', 'true'],
    );
    const running = rssKb(rec.sup_pid);
    await until(h, 'mem', waiting);
    const waitingKb = rssKb(rec.sup_pid);
    assert.ok(running > 0 && running < 2048, `supervisor RSS ${running} kB while the job runs`);
    assert.ok(waitingKb > 0 && waitingKb < 2048, `supervisor RSS ${waitingKb} kB while it waits`);
    assert.is((await h.run('bgmon-stop', ['mem'])).code, 0);
  }),
);

slowTest(
  'bad --retry values: exit 2, one line, nothing written',
  withHome(async (h) => {
    const bad = [
      ['--retry', 'x'],
      ['--retry', '-1'],
      ['--retry', '1001'],
      ['--retry', '1.5'],
      ['--retry-delay', '1s'],
      ['--retry', '1', '--retry-delay', 'soon'],
      ['--retry', '1', '--retry-on', '0'],
      ['--retry', '1', '--retry-on', 'SIGNOPE'],
      ['--retry', '1', '--retry-on', '256'],
      ['--retry', '1', '--retry-on', ''],
      ['--retry-on', '1'],
      ['--retry', '1', '--retry-max-delay', '-1s'],
    ];
    for (const flags of bad) {
      const r = await h.run('bgmon-start', ['--name', 'bad', ...flags, '--', 'true']);
      assert.is(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.not.ok(existsSync(join(h.root, 'jobs', 'bad.json')), flags.join(' '));
    }
    const zero = await h.start('zero', ['true'], ['--retry', '0']);
    assert.is(zero.retry, undefined, '--retry 0: no retries, a plain run');
  }),
);

slowTest(
  '--idle: a run waiting between attempts is not silent; the next attempt is watched afresh',
  withHome(async (h) => {
    await h.start('r', ['sh', '-c', 'exit 3'], ['--retry', '1', '--retry-delay', '4s']);
    await until(h, 'r', (x) => Boolean(x.next_attempt_at));
    await sleep(1500); // silent for longer than --idle, still waiting to retry
    const idle = await h.run('bgmon-status', ['--idle', '1s', '--json']);
    const wait = await h.run('bgmon-wait', ['r', '--idle', '1s', '--timeout', '30s']);
    assert.is(idle.stdout, '', 'status --idle does not list a run waiting to retry');
    assert.is(wait.code, 3, `the last attempt's exit code, not 125 for silence: ${wait.stdout}`);
    assert.equal(
      lines(wait.stdout).map((x) => [x.status, x.exit_code, x.attempt]),
      [['FAILED', 3, 2]],
    );
  }),
);

test.run();
