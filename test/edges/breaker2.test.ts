// A second adversarial round ("the same cases in other sizes and shapes"): each case failed on
// the code before its fix.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from 'bgmon-state';
import {
  binPath,
  childrenOf,
  eventually,
  forgeRecord,
  isAlive,
  lines,
  NO_SUCH_PID,
  ROOT,
  sleep,
  slowTest,
  spawnCollect,
  until,
  untilGone,
  withHome,
  type TestHome,
} from '../helpers';

const ls = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);

test(
  '--at refuses a date that does not exist (Feb 30, hour 24) instead of moving it to another day',
  withHome(async (h) => {
    const year = new Date().getUTCFullYear() + 1;
    for (const at of [`${year}-02-30T10:00:00Z`, `${year}-04-31 10:00`, `${year}-01-01T24:00:00Z`]) {
      const r = await h.run('bgmon-start', ['--name', 'later', '--at', at, '--', 'true']);
      assert.is(r.code, 2, `--at ${at}: ${r.stdout}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      const spec = JSON.stringify({ name: 'later', cmd: ['true'], at });
      const batch = await h.run('bgmon-start', ['-'], { input: spec + '\n' });
      assert.is(batch.code, 2, `"at": ${at}: ${batch.stdout}`);
    }
    assert.equal(ls(join(h.root, 'jobs')), []);
    // a real date is still taken, in every form the README shows
    const ok = await h.start('later', ['true'], ['--at', `${year}-02-28T10:00:00Z`]);
    assert.is(ok.not_before, `${year}-02-28T10:00:00.000Z`);
  }),
);

test(
  'bgmon-start -: a NUL byte in cmd, env or cwd is a usage error (exit 2) and starts nothing',
  withHome(async (h) => {
    const specs = [
      { name: 'n1', cmd: ['sleep', '30'] },
      { name: 'n2', cmd: ['sleep', '30'], env: { A: 'x\u0000y' } },
    ];
    const bad = [
      { name: 'n2', cmd: ['tr\u0000ue'] },
      { name: 'n2', cmd: ['true', 'a\u0000b'] },
      { name: 'n2', cmd: ['true'], cwd: `${h.dir}\u0000x` },
    ];
    for (const second of [specs[1], ...bad]) {
      const input = [specs[0], second].map((s) => JSON.stringify(s)).join('\n') + '\n';
      const r = await h.run('bgmon-start', ['-'], { input });
      assert.is(r.code, 2, `${JSON.stringify(second)}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.not.match(r.stderr, /\u0000/);
      assert.equal(ls(join(h.root, 'jobs')), [], 'nothing started');
      assert.equal(
        ls(join(h.root, 'run')).filter((f) => !f.endsWith('.lock')),
        [],
        'no env file left',
      );
    }
  }),
);

test(
  'a record copied under another name (or into another home) never signals the original job',
  withHome(async (h) => {
    const a = await h.start('a', ['sleep', '30']);
    const copy = { ...a, name: 'b', log: join(h.root, 'logs', 'b.log') };
    h.handWritten.add('b');
    writeFileSync(join(h.root, 'jobs', 'b.json'), JSON.stringify(copy) + '\n', { mode: 0o600 });
    for (const [bin, args] of [
      ['bgmon-stop', ['b', '--grace', '1s']],
      ['bgmon-signal', ['b', 'TERM']],
    ] as const) {
      const r = await h.run(bin, [...args]);
      assert.is(r.code, 1, `${bin}: ${r.stdout} ${r.stderr}`);
      assert.match(r.stderr, /nothing signalled/);
      assert.ok(isAlive(a.pid), `${bin} signalled job a through b's record`);
    }
    // the same run's record copied into another home
    const other = join(h.dir, 'other');
    const env = { BGMON_HOME: other };
    const seed = await h.run('bgmon-start', ['--name', 'seed', '--', 'true'], { env });
    assert.is(seed.code, 0, seed.stderr);
    writeFileSync(join(other, 'jobs', 'a.json'), JSON.stringify({ ...a, log: join(other, 'logs', 'a.log') }) + '\n');
    const r = await h.run('bgmon-stop', ['a', '--grace', '1s'], { env });
    assert.is(r.code, 1, `${r.stdout} ${r.stderr}`);
    assert.ok(isAlive(a.pid), "a stop in another home signalled this home's job");
    assert.is((await h.status('a')).status, 'RUNNING');
    // the job's own record still stops it
    const own = await h.run('bgmon-stop', ['a', '--grace', '1s']);
    assert.is(own.code, 0, own.stderr);
    assert.is(lines(own.stdout)[0].status, 'STOPPED');
    await until(h, 'a', 'STOPPED');
  }),
);

test(
  'a lost queue file is rebuilt without letting a new job pass the jobs already waiting (FIFO)',
  withHome(async (h) => {
    const go = join(h.dir, 'go'); // a holds the slot until the test has queued everything
    await h.start('a', ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done`], ['--queue', 'w']);
    for (const name of ['b', 'c']) await h.start(name, ['sleep', '0.1'], ['--queue', 'w']);
    unlinkSync(join(h.root, 'run', 'queues', 'w.json'));
    const d = await h.start('d', ['sleep', '0.1'], ['--queue', 'w']);
    assert.is(d.status, 'QUEUED');
    writeFileSync(go, '');
    const wait = await h.run('bgmon-wait', ['a', 'b', 'c', 'd'], { timeoutMs: 30_000 });
    assert.is(wait.code, 0, wait.stderr);
    const recs = lines(wait.stdout).sort((x, y) => Date.parse(x.started_at) - Date.parse(y.started_at));
    assert.equal(
      recs.map((r) => r.name),
      ['a', 'b', 'c', 'd'],
      recs.map((r) => `${r.name} seq ${r.queue_seq}`).join(', '),
    );
    assert.ok(d.queue_seq > recs[2].queue_seq, `d's number ${d.queue_seq} follows c's`);
  }),
);

test(
  'two bgmon-start - batches racing for the same names print every job they did start',
  withHome(async (h) => {
    const specs = Array.from({ length: 40 }, (_, i) => JSON.stringify({ name: `x${i}`, cmd: ['sleep', '30'] }));
    const [one, two] = await Promise.all([
      h.run('bgmon-start', ['-'], { input: specs.join('\n') + '\n' }),
      h.run('bgmon-start', ['-'], { input: [...specs].reverse().join('\n') + '\n' }),
    ]);
    const printed = [...lines(one.stdout), ...lines(two.stdout)].map((r) => `${r.name}@${r.id}`).sort();
    const status = await h.run('bgmon-status', ['--json']);
    const running = lines(status.stdout)
      .map((r) => `${r.name}@${r.id}`)
      .sort();
    assert.is(running.length, 40);
    assert.equal(printed, running, `exit ${one.code} ${one.stderr} / exit ${two.code} ${two.stderr}`);
    for (const r of [one, two].filter((r) => r.code !== 0)) {
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, /^bgmon-start: stdin line \d+: job x\d+ is RUNNING/);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  }),
);

test(
  'a glob with a range out of order ([z-a]) is a usage error in every command, not an internal error',
  withHome(async (h) => {
    await h.start('ab', ['true']);
    const runs: [string, string[]][] = [
      ['bgmon-status', []],
      ['bgmon-stop', []],
      ['bgmon-tail', []],
      ['bgmon-wait', []],
      ['bgmon-rm', []],
      ['bgmon-signal', ['TERM']],
    ];
    for (const [bin, extra] of runs) {
      const r = await h.run(bin, ['a[c-a]', ...extra]);
      assert.is(r.code, 2, `${bin}: ${r.stderr}`);
      assert.is(r.stderr, `${bin}: invalid job name or glob "a[c-a]"\n`);
      assert.is(r.stdout, '');
    }
    assert.is((await h.status('ab')).status, 'SUCCEEDED');
  }),
);

test(
  'a wait status over 255 (a corrupt end file, a hand-made record) is never an exit 0 of bgmon-wait',
  withHome(async (h) => {
    for (const [i, written] of ['256', '999', '00'].entries()) {
      const rec = await h.start(`e${i}`, ['sleep', '30']);
      process.kill(rec.sup_pid, 'SIGKILL'); // nothing of ours writes the end file now
      process.kill(rec.pid, 'SIGKILL');
      await untilGone([rec.pid, rec.sup_pid], 'the job and its supervisor');
      writeFileSync(join(h.root, 'jobs', `.e${i}@${rec.id}.end`), `${written}\n`);
      const wait = await h.run('bgmon-wait', [`e${i}`]);
      const [now] = lines(wait.stdout);
      assert.is(now.status, 'DEAD', `end file ${written}: ${wait.stdout}`);
      assert.is(wait.code, 1, `end file ${written}`);
    }
    for (const exitCode of [256, 512, 0]) {
      const name = `f${exitCode}`;
      const ended = new Date().toISOString();
      forgeRecord(h, name, { status: 'FAILED', exit_code: exitCode, pid: NO_SUCH_PID, ended_at: ended });
      const wait = await h.run('bgmon-wait', [name]);
      assert.is(wait.code, 1, `a FAILED record with exit_code ${exitCode}: ${wait.stderr}`);
    }
  }),
);

slowTest(
  'a forged --retry record naming any process as its supervisor makes stop signal none of its children',
  withHome(async (h) => {
    // an innocent process (leading its own session, as a supervisor does) with two children
    const parent = h.spawnOutside('sh', ['-c', 'sleep 1000 & sleep 1000 & wait'], { detached: true });
    const kids = await eventually(() => {
      const found = childrenOf(parent.pid!);
      return found.length === 2 && found;
    });
    const id = 'mx2aaaaa-0000abcd';
    forgeRecord(h, 'forged', {
      id,
      pid: NO_SUCH_PID,
      starttime: 5,
      sup_pid: parent.pid,
      sup_starttime: readStat(parent.pid!)!.starttime,
      retry: { count: 2, delay_ms: 60_000, max_delay_ms: 3_600_000, on: null },
    });
    const uptimeCs = Math.round(Number(readFileSync('/proc/uptime', 'latin1').split(' ')[0]) * 100);
    writeFileSync(join(h.root, 'jobs', `.forged@${id}.end`), `attempt 1 1 ${uptimeCs} 60000\n`);
    assert.is((await h.status('forged')).status, 'RUNNING', 'the forged run waits for its next attempt');
    const stop = await h.run('bgmon-stop', ['forged', '--grace', '1s'], { timeoutMs: 60_000 });
    assert.is(stop.code, 1, `${stop.stdout} ${stop.stderr}`);
    assert.match(stop.stderr, /nothing signalled/);
    for (const pid of kids) assert.ok(isAlive(pid), `child ${pid} of an innocent process was signalled`);
  }),
);

/** A transport over test/fixtures/fake-ssh whose host `cut` is host a with the connection lost after one line. */
function cuttingTransport(h: TestHome): Record<string, string> {
  const script = join(h.dir, 'cutting-ssh');
  const fake = join(ROOT, 'test', 'fixtures', 'fake-ssh');
  writeFileSync(
    script,
    `#!/bin/sh\nhost=$1; shift\nif [ "$host" = cut ]; then ${fake} a "$@" | head -n 1; exit 255; fi\n` +
      `exec ${fake} "$host" "$@"\n`,
    { mode: 0o755 },
  );
  return { BGMON_SSH: script, FAKE_HOSTS_DIR: join(h.dir, 'hosts'), BGMON_HOSTS: '' };
}

slowTest(
  'bgmon-wait --host: --until and --idle exit as on the host; a connection lost part-way is exit 1',
  withHome(async (h) => {
    const env = cuttingTransport(h);
    const hostEnv = { env: { BGMON_HOME: join(h.dir, 'hosts', 'a') } };
    try {
      for (const [name, script] of [
        ['srv', 'echo ready; sleep 30'],
        ['quiet', 'sleep 30'],
        ['ok1', 'true'],
        ['ok2', 'true'],
      ]) {
        const r = await h.run('bgmon-start', ['--name', name, '--', 'sh', '-c', script], hostEnv);
        assert.is(r.code, 0, r.stderr);
      }
      await h.run('bgmon-wait', ['ok1', 'ok2'], hostEnv);
      const wait = (args: string[]) => h.run('bgmon-wait', ['--host', 'a', ...args], { env, timeoutMs: 30_000 });
      assert.is((await wait(['--until', 'ready', 'srv'])).code, 0, 'a matched line');
      assert.is((await wait(['--until', 'never', 'ok1'])).code, 1, 'succeeded without the line');
      assert.is((await wait(['--idle', '300ms', 'quiet'])).code, 125, 'silent for 300 ms');
      assert.is((await wait(['ok1', 'ok2'])).code, 0);
      const cut = await h.run('bgmon-wait', ['--host', 'cut', 'ok1', 'ok2'], { env, timeoutMs: 30_000 });
      assert.is(cut.code, 1, `${cut.stdout} ${cut.stderr}`);
      assert.match(cut.stderr, /^bgmon-wait: host cut: exited 255 part-way/m, cut.stderr);
    } finally {
      await h.killHome(join(h.dir, 'hosts', 'a'));
    }
  }),
);

test(
  'bgmon-start -: --retry and --on-end beside "-" apply to every line; --again or a bad value is refused',
  withHome(async (h) => {
    const flags = ['--retry', '1', '--retry-delay', '100ms', '--on-end', 'echo HOOKED'];
    const input = ['r1', 'r2'].map((name) => JSON.stringify({ name, cmd: ['false'] })).join('\n') + '\n';
    const r = await h.run('bgmon-start', [...flags, '-'], { input });
    assert.is(r.code, 0, r.stderr);
    for (const rec of lines(r.stdout)) {
      assert.is(rec.retry?.count, 1, JSON.stringify(rec));
      assert.is(rec.on_end, 'echo HOOKED');
    }
    const wait = await h.run('bgmon-wait', ['r1']);
    assert.is(lines(wait.stdout)[0].attempt, 2, wait.stdout);
    for (const bad of [
      ['--again', 'r1'],
      ['--retry', 'x'],
      ['--on-end', ' '],
    ]) {
      const refused = await h.run('bgmon-start', [...bad, '-'], { input: '' });
      assert.is(refused.code, 2, `${bad.join(' ')}: ${refused.stderr}`);
      assert.is(refused.stderr.trim().split('\n').length, 1, refused.stderr);
    }
  }),
);

test(
  'bgmon-tail -f of a running job whose log is rotated away (moved, an empty file created) loses no line',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const script = `seq 1 5; while [ ! -e ${go} ]; do sleep 0.05; done; seq 6 40`;
    await h.start('rot', ['sh', '-c', script]);
    const log = join(h.root, 'logs', 'rot.log');
    await eventually(() => existsSync(log) && readFileSync(log, 'utf8').split('\n').length > 5);
    const { child, done: tail } = spawnCollect(
      process.execPath,
      [binPath('bgmon-tail'), '-f', '-n', '100', 'rot'],
      { env: h.env },
      { timeoutMs: 30_000 },
    );
    let seen = '';
    child.stdout!.on('data', (c) => (seen += c));
    try {
      // rotated once tail has printed the first lines, so it follows the log it opened (a tail
      // that a loaded machine starts after the rotation opens the new, empty file: no rotation)
      await eventually(
        () => seen === '1\n2\n3\n4\n5\n',
        15_000,
        () => `bgmon-tail to print the first lines (seen: ${JSON.stringify(seen)})`,
      );
      renameSync(log, join(h.dir, 'rotated.log'));
      writeFileSync(log, '', { mode: 0o600 });
      await sleep(500); // tail has seen the new file at the path
      writeFileSync(go, '');
      const r = await tail;
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stdout, Array.from({ length: 40 }, (_, i) => `${i + 1}\n`).join(''));
    } finally {
      child.kill('SIGKILL');
    }
  }),
);

test.run();
