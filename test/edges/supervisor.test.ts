// Issue 9, the supervisor and launching: items 2, 3, 5, 6, 7, 12, and supervisor.sh itself.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseSignal, readStat, signalName } from 'bgmon-state';
import {
  binPath,
  childrenOf,
  eventually,
  isAlive,
  lines,
  masked,
  ROOT,
  rssKb,
  slowTest,
  untilGone,
  withHome,
  type TestHome,
} from '../helpers';

const SUPERVISOR = join(ROOT, 'packages', 'bgmon-state', 'src', 'supervisor.sh');
const hasShellcheck = spawnSync('shellcheck', ['--version']).status === 0;

const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');

slowTest(
  'item 2: a 40 KB argument, 3,000 arguments, 1.2 MB of arguments: the end is recorded, a dependent runs',
  withHome(async (h) => {
    const shapes: [string, string[]][] = [
      ['wide', ['x'.repeat(40_000)]],
      ['many', Array.from({ length: 3000 }, (_, i) => `arg${i}`)],
      ['huge', Array.from({ length: 12 }, (_, i) => `${i}:${'h'.repeat(100_000)}`)],
      ['longest', ['y'.repeat(131_071)]], // the kernel's limit for one argument (MAX_ARG_STRLEN - 1)
    ];
    for (const [name, args] of shapes) {
      const rec = await h.start(name, ['sh', '-c', 'exit 0', 'sh', ...args]);
      assert.equal(rec.cmd.slice(4), args, `${name}: argv recorded exactly`);
      await h.start(`${name}-next`, ['true'], ['--after', name]);
      const wait = await h.run('bgmon-wait', [name, `${name}-next`, '--timeout', '30s']);
      assert.is(wait.code, 0, `${name}: ${wait.stderr}${wait.stdout.slice(0, 300)}`);
      assert.equal(
        lines(wait.stdout).map((r) => r.status),
        ['SUCCEEDED', 'SUCCEEDED'],
      );
      assert.is(h.record(name).status, 'SUCCEEDED', `${name}: folded on disk`);
    }
  }),
);

test(
  'item 3: the supervisor carries no BGMON_JOB_ID and has no child but the job',
  withHome(async (h) => {
    const rec = await h.start('marked', ['sh', '-c', 'sleep 30 & wait']);
    // bgmon-start returns once "go" is sent; the marker shows in /proc once the job's sh has exec'd the command
    const marker = `BGMON_JOB_ID=${rec.id}`;
    await eventually(() => environ(rec.pid).includes(marker), 10_000, 'the job to carry the marker');
    assert.ok(environ(rec.pid).includes('BGMON_JOB=marked'));
    assert.not.ok(
      environ(rec.sup_pid).some((e) => e.startsWith('BGMON_JOB_ID=')),
      'the supervisor does not',
    );
    assert.equal(childrenOf(rec.sup_pid), [rec.pid]);
    const stop = await h.run('bgmon-stop', ['marked']);
    assert.is(stop.code, 0, stop.stderr);
    const [rec2] = lines(stop.stdout);
    assert.is(rec2.status, 'STOPPED');
    assert.match(rec2.ended_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.is(rec2.signal, 'SIGTERM');
  }),
);

slowTest(
  'an INT sent to the job the moment bgmon-start prints its record ends it (no window with INT ignored)',
  withHome(async (h) => {
    for (let i = 0; i < 10; i++) {
      const child = spawn(process.execPath, [binPath('bgmon-start'), '--name', `int${i}`, '--', 'sleep', '30'], {
        env: h.env,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        let text = '';
        child.stdout.on('data', (chunk) => {
          text += chunk;
          if (!text.includes('\n')) return;
          process.kill(-JSON.parse(text).pid, 'SIGINT');
          resolve();
        });
        child.on('close', (code) => reject(new Error(`bgmon-start exited ${code} without a record`)));
      });
    }
    const names = Array.from({ length: 10 }, (_, i) => `int${i}`);
    const wait = await h.run('bgmon-wait', [...names, '--timeout', '30s'], { timeoutMs: 60_000 });
    assert.is(wait.code, 1, wait.stdout);
    assert.equal(
      lines(wait.stdout).map((r) => [r.name, r.status, r.signal]),
      names.map((n) => [n, 'FAILED', 'SIGINT']),
    );
  }),
);

slowTest(
  'a command line that fits bgmon-start but not its supervisor: a clear error, exit 1, nothing left behind',
  withHome(async (h) => {
    // the supervisor's argv is the command's plus its script: some lengths fit the one, not the other
    const arg = 'x'.repeat(99);
    const argv = (n: number) => [binPath('bgmon-start'), '--name', 'big', '--', 'true', ...Array(n).fill(arg)];
    const probe = { env: h.env, argv0: process.execPath }; // what exec of bgmon-start would be given
    // the kernel counts the exec'd path too: /bin/true under a path exactly as long as node's,
    // or the probe is a few bytes short and the largest fitting n may not fit node
    const trueAsLongAsNode = `/bin/${'/'.repeat(process.execPath.length - '/bin/true'.length)}true`;
    const fits = (n: number) => spawnSync(trueAsLongAsNode, argv(n), probe).error === undefined;
    // the largest n whose argv fits, by bisection (each probe builds a 2 MB argv)
    let [lo, hi] = [0, 40_000];
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (fits(mid)) lo = mid;
      else hi = mid;
    }
    const n = lo;
    const outcomes = new Set<string>();
    // 2 words of 100 bytes a step: the window spans more than the supervisor's script (~6 KB)
    for (let k = n; k > n - 100; k -= 2) {
      const r = spawnSync(process.execPath, argv(k), { env: h.env, encoding: 'utf8', maxBuffer: 2 ** 26 });
      if (r.status === 0) {
        outcomes.add('started');
        break;
      }
      outcomes.add('refused');
      assert.is(r.status, 1, `${k}/${n}: ${r.error} ${r.signal} ${r.stderr}`);
      assert.is(r.stderr, 'bgmon-start: cannot start the job: the command line is longer than the kernel allows\n');
      assert.is(r.stdout, '');
      assert.equal(readdirSync(join(h.root, 'logs')), [], 'no log left');
      assert.equal(readdirSync(join(h.root, 'jobs')), [], 'no record, end or spare file left');
    }
    assert.equal([...outcomes], ['refused', 'started'], 'both sides of the limit were tried');
  }),
);

slowTest(
  'start -: a line the kernel could not exec is refused before any line starts (exit 2), to the byte',
  withHome(async (h) => {
    const marker = join(h.dir, 'first-ran');
    const first = JSON.stringify({ name: 'first', cmd: ['sh', '-c', `touch ${marker}`] });
    // 20 words of 100 kB (each under the kernel's 128 KiB per word) and a last one of `tail` bytes
    const big = (name: string, tail: number) =>
      JSON.stringify({ name, cmd: ['true', ...Array(20).fill('x'.repeat(100_000)), 'y'.repeat(tail)] });
    const batch = (lines: string[]) => h.run('bgmon-start', ['-'], { input: `${lines.join('\n')}\n` });
    // probes start nothing: a third line names a RUNNING job, so a batch that passes line 2 fails there
    await h.start('busy', ['sleep', '60']);
    const busy = JSON.stringify({ name: 'busy', cmd: ['true'] });
    const passes = async (tail: number) => {
      const r = await batch([first, big('big', tail), busy]);
      if (r.code === 1 && r.stderr.startsWith('bgmon-start: stdin line 3: job busy is RUNNING')) return true;
      assert.is(r.code, 2, r.stderr);
      assert.match(r.stderr, /^bgmon-start: stdin line 2: the command line and environment take \d+ bytes; the /);
      return false;
    };
    let [lo, hi] = [0, 127_000];
    assert.ok((await passes(lo)) && !(await passes(hi)), 'the limit lies between the probes');
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (await passes(mid)) lo = mid;
      else hi = mid;
    }
    // one byte over: nothing starts, nothing is written
    const over = await batch([first, big('big', hi)]);
    assert.is(over.code, 2);
    assert.is(over.stdout, '');
    assert.ok(!existsSync(marker), 'the first line never ran');
    assert.ok(
      !existsSync(join(h.root, 'jobs', 'first.json')) && !existsSync(join(h.root, 'jobs', 'big.json')),
      'no record',
    );
    assert.equal(readdirSync(join(h.root, 'logs')), ['busy.log'], "no log but the running job's");
    // what the check lets through, the kernel runs
    const fits = await batch([first, big('big', lo)]);
    assert.is(fits.code, 0, fits.stderr);
    assert.is((await h.run('bgmon-wait', ['first', 'big'])).code, 0);
    // and it refuses no more than a few bytes the kernel would take (a queued job may be launched by
    // another bgmon binary, with a longer path in its supervisor's argv)
    const cmd = JSON.parse(big('x', lo + 16)).cmd;
    const single = await h.run('bgmon-start', ['--name', 'single', '--', ...cmd]);
    assert.equal(
      [single.code, single.stderr],
      [1, 'bgmon-start: cannot start the job: the command line is longer than the kernel allows\n'],
    );
  }),
);

/** Starts a job and reads /proc the moment its record arrives, before bgmon-start has even exited. */
function startAndLook(h: TestHome, name: string): Promise<{ rec: any; st: ReturnType<typeof readStat> }> {
  const child = spawn(process.execPath, [binPath('bgmon-start'), '--name', name, '--', 'sleep', '30'], {
    env: h.env,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let text = '';
    child.stdout.on('data', (chunk) => {
      text += chunk;
      if (!text.includes('\n')) return;
      const rec = JSON.parse(text);
      resolve({ rec, st: readStat(rec.pid) });
    });
    child.on('close', (code) => reject(new Error(`bgmon-start exited ${code} without a record`)));
  });
}

slowTest(
  'item 5: the moment bgmon-start prints the record, pid = pgid = sid, 30 times in a row',
  withHome(async (h) => {
    for (let i = 0; i < 30; i++) {
      const { rec, st } = await startAndLook(h, `g${i}`);
      assert.is(st!.pgrp, rec.pid, `start ${i}: process group`);
      assert.is(st!.session, rec.pid, `start ${i}: session`);
      process.kill(-rec.pid, 'SIGTERM'); // throws ESRCH if no such group
      const wait = await h.run('bgmon-wait', [`g${i}`, '--timeout', '20s']);
      assert.is(wait.code, 128 + 15, wait.stdout);
    }
  }),
);

test(
  "item 6: only a -- before CMD is bgmon-start's; --name without a value is a usage error",
  withHome(async (h) => {
    const a = await h.run('bgmon-start', ['--name', 'a', 'printf', '%s\\n', 'a', '--', 'b']);
    assert.is(a.code, 0, a.stderr);
    assert.equal(JSON.parse(a.stdout).cmd, ['printf', '%s\\n', 'a', '--', 'b']);
    const b = await h.run('bgmon-start', ['--name', 'b', '--', 'printf', '%s\\n', '--', '--', 'x']);
    assert.equal(JSON.parse(b.stdout).cmd, ['printf', '%s\\n', '--', '--', 'x']);
    await h.run('bgmon-wait', ['a', 'b']);
    assert.is(readFileSync(join(h.root, 'logs', 'a.log'), 'utf8'), 'a\n--\nb\n');
    assert.is(readFileSync(join(h.root, 'logs', 'b.log'), 'utf8'), '--\n--\nx\n');
    for (const argv of [['--name'], ['--name', '--', 'true'], ['--cwd']]) {
      const r = await h.run('bgmon-start', argv);
      assert.is(r.code, 2, argv.join(' '));
      assert.is(r.stderr, `bgmon-start: ${argv[0]}: missing value (see --help)\n`);
    }
  }),
);

test(
  'item 7: every signal 1-64 has a name that parses back; real-time signals end a job with 128+n',
  withHome(async (h) => {
    for (let n = 1; n <= 64; n++) assert.is(parseSignal(signalName(n)), n, `${n} -> ${signalName(n)}`);
    assert.is(signalName(36), 'SIGRTMIN+2');
    assert.is(signalName(50), 'SIGRTMAX-14');
    for (const [sig, name] of [
      [36, 'SIGRTMIN+2'],
      [50, 'SIGRTMAX-14'],
      [64, 'SIGRTMAX'],
    ] as const) {
      const rec = await h.start(`rt${sig}`, ['sleep', '30']);
      process.kill(rec.pid, sig);
      const wait = await h.run('bgmon-wait', [`rt${sig}`, '--timeout', '20s']);
      assert.is(wait.code, 128 + sig, `${sig}: ${wait.stdout}`);
      const [ended] = lines(wait.stdout);
      assert.is(ended.status, 'FAILED');
      assert.is(ended.signal, name);
      assert.is(ended.exit_code, null);
    }
    const rec = await h.start('rtstop', ['sleep', '30']);
    const stop = await h.run('bgmon-stop', ['rtstop', '--signal', 'RTMIN+2']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].signal, 'SIGRTMIN+2');
    assert.not.ok(isAlive(rec.pid));
  }),
);

test(
  'item 12: a symlink or hard link planted at the log is never written through',
  withHome(async (h) => {
    mkdirSync(join(h.root, 'logs'), { recursive: true, mode: 0o700 });
    const victim = join(h.dir, 'victim');
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(h.root, 'logs', 'viasym.log'));
    linkSync(victim, join(h.root, 'logs', 'viahard.log'));
    for (const name of ['viasym', 'viahard']) {
      await h.start(name, ['sh', '-c', 'echo pwned']);
      await h.run('bgmon-wait', [name]);
      const log = join(h.root, 'logs', `${name}.log`);
      assert.ok(lstatSync(log).isFile(), `${name}: the log is a file of its own`);
      assert.is(lstatSync(log).nlink, 1);
      assert.is(readFileSync(log, 'utf8'), 'pwned\n');
    }
    // a rerun keeps the old log under the old run's id: a link planted there is replaced, not followed
    const old = h.record('viasym');
    symlinkSync(victim, join(h.root, 'logs', `viasym@${old.id}.log`));
    await h.start('viasym', ['sh', '-c', 'echo again']);
    await h.run('bgmon-wait', ['viasym']);
    assert.is(readFileSync(victim, 'utf8'), 'precious\n', 'the victim is untouched');
    assert.is(readFileSync(join(h.root, 'logs', `viasym@${old.id}.log`), 'utf8'), 'pwned\n');
  }),
);

test(
  "the supervisor does not depend on the record's key order, and stays under 2 MB",
  withHome(async (h) => {
    // the job ends once the reversed record is written, not after a second the load could outlast
    const release = join(h.dir, 'release');
    const rec = await h.start('order', [
      'sh',
      '-c',
      `read x < /dev/null; while [ ! -e ${release} ]; do sleep 0.05; done`,
    ]);
    const reversed = Object.fromEntries(Object.entries(h.record('order')).reverse());
    writeFileSync(join(h.root, 'jobs', 'order.json'), JSON.stringify(reversed) + '\n');
    assert.ok(rssKb(rec.sup_pid) > 0 && rssKb(rec.sup_pid) < 2048, `supervisor RSS ${rssKb(rec.sup_pid)} kB`);
    writeFileSync(release, '');
    const wait = await h.run('bgmon-wait', ['order', '--timeout', '20s']);
    assert.is(wait.code, 0, wait.stdout);
    assert.is(lines(wait.stdout)[0].status, 'SUCCEEDED');
    await untilGone([rec.sup_pid], 'the supervisor');
    assert.equal(readdirSync(join(h.root, 'jobs')), ['order.json'], 'end and spare files consumed by the fold');
  }),
);

test(
  'the command gets INT and QUIT back (sh ignores them in background children), whatever its name',
  withHome(async (h) => {
    const cwd = h.subdir('cmds');
    // a program named a=b: env would read that word as a variable, not as the command
    const program = '#!/bin/sh\necho "ran $*"\nexec sleep 1000\n';
    writeFileSync(join(cwd, 'a=b'), program, { mode: 0o755 });
    // and a program named -, which env would read as -i
    writeFileSync(join(cwd, '-'), program, { mode: 0o755 });
    const plain = await h.start('plain', ['sleep', '1000']);
    const odd = await h.start('odd', ['./a=b', 'x', 'y z'], ['--cwd', cwd]);
    const dash = await h.start('dash', ['-', 'arg'], ['--cwd', cwd, '--env', `PATH=${cwd}:/usr/bin:/bin`]);
    for (const rec of [plain, odd, dash]) {
      // the pid is the job's from the first moment; its program is the command once "go" has passed
      await eventually(
        () => readFileSync(`/proc/${rec.pid}/cmdline`, 'latin1').includes('sleep'),
        10_000,
        `${rec.name}: its command running`,
      );
      assert.not.ok(masked(rec.pid, 'SigIgn', 2), `${rec.name}: SIGINT ignored`);
      assert.not.ok(masked(rec.pid, 'SigIgn', 3), `${rec.name}: SIGQUIT ignored`);
    }
    assert.is(readFileSync(odd.log, 'utf8'), 'ran x y z\n');
    assert.is(readFileSync(dash.log, 'utf8'), 'ran arg\n');
    const r = await h.run('bgmon-signal', ['plain', 'INT']);
    assert.is(r.code, 0, r.stderr);
    const ended = lines((await h.run('bgmon-wait', ['plain', '--timeout', '20s'])).stdout)[0];
    assert.equal([ended.status, ended.signal], ['FAILED', 'SIGINT']);
  }),
);

test('what supervisor.sh relies on: env --default-signal, setsid in place, wait reporting 128+n', () => {
  const env = spawnSync('env', ['--default-signal=INT,QUIT', 'true']);
  assert.is(env.status, 0, 'coreutils env with --default-signal (8.31 or later)');
  const out = execFileSync('/bin/sh', [
    '-c',
    '(exec setsid -- /bin/sh -c \'echo "$$ $(cut -d" " -f6 /proc/$$/stat)"\') & wait $!',
  ])
    .toString()
    .trim()
    .split(/\s+/);
  assert.is(out[0], out[1], 'setsid makes the job the leader of its session without forking');
  const rc = spawnSync('/bin/sh', ['-c', "sh -c 'kill -TERM $$' & wait $!; echo $?"]).stdout.toString().trim();
  assert.is(rc, '143', 'wait reports a signal as 128+n');
});

(hasShellcheck ? test : test.skip)(
  `supervisor.sh passes shellcheck (POSIX sh)${hasShellcheck ? '' : ' (SKIPPED: shellcheck is not installed)'}`,
  () => {
    const r = spawnSync('shellcheck', ['-s', 'sh', SUPERVISOR]);
    assert.is(r.status, 0, r.stdout.toString());
  },
);

test.run();
