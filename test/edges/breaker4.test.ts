// Breaker round 4: what bgmon says must be true. Follow, wait --until, the table and the log
// cursor, attacked the way a demanding user or a hostile input would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { shortTime } from 'bgmon-state';
import {
  binPath,
  BINS,
  eventually,
  lines,
  listDir,
  slowTest,
  spawnCollect,
  until,
  untilOnDisk,
  withHome,
  type TestHome,
} from '../helpers';

const node = process.execPath;

/** Runs `bgmon-status --follow ...` with `input` on stdin; `go` is written once it printed `lines` lines. */
async function followThenGo(h: TestHome, args: string[], input: string, lineCount: number, go: string) {
  const { child, done } = spawnCollect(node, [binPath('bgmon-status'), '--follow', ...args], { env: h.env }, { input });
  let seen = '';
  child.stdout!.on('data', (chunk) => (seen += chunk));
  try {
    await eventually(() => seen.split('\n').length > lineCount, 10_000, 'the current lines');
    writeFileSync(go, '');
    return await done;
  } finally {
    child.kill('SIGKILL');
  }
}

test(
  '--follow takes runs as NAME@ID and records on stdin (bgmon-start | bgmon-status --follow --until-done -)',
  withHome(async (h) => {
    const gated = (file: string, code: number) => `while [ ! -e ${file} ]; do sleep 0.05; done; exit ${code}`;
    const go1 = join(h.dir, 'go1');
    const started = await h.run('bgmon-start', ['--name', 'z', '--', 'sh', '-c', gated(go1, 4)]);
    assert.is(started.code, 0, started.stderr);
    const first = JSON.parse(started.stdout);
    // the record on stdin names its run: exit as bgmon-wait would, with that run's code
    const piped = await followThenGo(h, ['--until-done', '-'], started.stdout, 1, go1);
    assert.is(piped.code, 4, piped.stderr);
    assert.equal(
      lines(piped.stdout).map((r) => [r.event, r.id, r.status]),
      [
        ['current', first.id, 'RUNNING'],
        ['ended', first.id, 'FAILED'],
      ],
    );
    // a past run, and the current one, from --history on stdin: each followed as its own run
    const go2 = join(h.dir, 'go2');
    const second = await h.start('z', ['sh', '-c', gated(go2, 0)]);
    const history = await h.run('bgmon-status', ['--history', '--json', 'z']);
    const both = await followThenGo(h, ['--until-done', '-'], history.stdout, 2, go2);
    assert.is(both.code, 1, both.stderr); // several runs, one FAILED
    assert.equal(
      lines(both.stdout).map((r) => [r.event, r.id, r.status]),
      [
        ['current', first.id, 'FAILED'],
        ['current', second.id, 'RUNNING'],
        ['ended', second.id, 'SUCCEEDED'],
      ],
    );
    // NAME@ID of a past run: its outcome at once; of a run that does not exist: exit 3
    const past = await h.run('bgmon-status', ['--follow', '--until-done', `z@${first.id}`]);
    assert.is(past.code, 4, past.stderr);
    assert.equal(
      lines(past.stdout).map((r) => [r.event, r.id]),
      [['current', first.id]],
    );
    const none = await h.run('bgmon-status', ['--follow', '--until-done', 'z@nosuchrun']);
    assert.is(none.code, 3, none.stderr);
    assert.is(none.stderr, 'bgmon-status: no such run: z@nosuchrun\n');
  }),
);

slowTest(
  '--follow of one run (NAME@ID) ends with that run: a rerun of the name is not followed',
  withHome(async (h) => {
    const first = await h.start('y', ['sleep', '30']);
    const args = [binPath('bgmon-status'), '--follow', '--until-done', `y@${first.id}`];
    const { child, done } = spawnCollect(node, args, { env: h.env });
    let seen = '';
    child.stdout!.on('data', (chunk) => (seen += chunk));
    try {
      await eventually(() => seen.includes('"current"'), 10_000, 'the current line');
      const stop = await h.run('bgmon-stop', ['y']);
      assert.is(stop.code, 0, stop.stderr);
      const second = await h.start('y', ['sleep', '30']);
      const r = await done;
      assert.is(r.code, 1, r.stderr); // STOPPED
      const lines_ = lines(r.stdout).map((x) => [x.event, x.id, x.status]);
      assert.equal(lines_, [
        ['current', first.id, 'RUNNING'],
        ['ended', first.id, 'STOPPED'],
      ]);
      assert.ok(!r.stdout.includes(second.id), r.stdout);
    } finally {
      child.kill('SIGKILL');
    }
  }),
);

test(
  "--until on a run that never started (CANCELLED) does not match the lines of the name's rerun",
  withHome(async (h) => {
    const pre = await h.start('p', ['false']);
    await until(h, 'p', 'FAILED');
    const cancelled = await h.start('c', ['echo', 'ready'], ['--after', 'p']);
    assert.is(cancelled.status, 'CANCELLED');
    await h.start('c', ['sh', '-c', 'echo ready; sleep 30']);
    await until(h, 'c', (r) => r.log_bytes === 6);
    const r = await h.run(node, [binPath('bgmon-wait'), '--until', 'ready', `c@${cancelled.id}`]);
    assert.is(r.code, 1, r.stdout); // CANCELLED: never printed the line
    const [rec] = lines(r.stdout);
    assert.is(rec.id, cancelled.id);
    assert.is(rec.status, 'CANCELLED');
    // the same through its record on stdin
    const piped = await h.run(node, [binPath('bgmon-wait'), '--until', 'ready'], {
      input: JSON.stringify(cancelled) + '\n',
    });
    assert.is(piped.code, 1, piped.stdout);
    assert.is(pre.name, 'p');
  }),
);

test(
  'the table fits the terminal in columns, not UTF-16 units: wide characters in CMD; bidi controls escaped',
  withHome(async (h) => {
    await h.start('wide', ['sh', '-c', `echo ${'你好世界'.repeat(20)}`]);
    await h.start('bidi', ['echo', 'safe\u202etxt.exe\u2028next\u2066x\u2069']);
    await until(h, 'bidi', 'SUCCEEDED');
    for (const width of [80, 60, 45]) {
      const r = await h.run('bgmon-status', ['--table'], { env: { COLUMNS: String(width) } });
      assert.is(r.code, 0, r.stderr);
      const rows = r.stdout.trimEnd().split('\n');
      assert.is(rows.length, 3, r.stdout);
      // a CJK character takes two columns of a terminal (test strings: ASCII, CJK and the ellipsis)
      const columns = (row: string) => [...row].reduce((n, ch) => n + (/[\u4e00-\u9fff]/.test(ch) ? 2 : 1), 0);
      for (const row of rows) assert.ok(columns(row) <= width, `${columns(row)} columns > ${width}: ${row}`);
      const wide = rows.find((row) => row.startsWith('wide'))!;
      assert.match(wide, /…$/);
      // the width left is used (a wide character that does not fit leaves at most one column)
      assert.ok(columns(wide) >= Math.min(width, 48) - 1, `${columns(wide)} columns of ${width}: ${wide}`);
    }
    const r = await h.run('bgmon-status', ['--table', 'bidi']);
    assert.match(r.stdout, "echo 'safe\\u202etxt.exe\\u2028next\\u2066x\\u2069'");
    assert.not.match(r.stdout, /[\u2028\u202e\u2066\u2069]/);
  }),
);

slowTest(
  'tail --json: bytes no later write can complete are printed, and the cursor moves past them',
  withHome(async (h) => {
    // a byte that begins no character (0xff, 0xc0), and a character cut by the end of a run
    const outputs: Record<string, [string, string]> = {
      ff: ['abc\\377', 'abc\ufffd'],
      c0: ['x\\300', 'x\ufffd'],
      cut: ['y\\342\\202', 'y\ufffd'],
    };
    for (const [name, [bytes]] of Object.entries(outputs)) await h.start(name, ['printf', bytes]);
    for (const [name, [, text]] of Object.entries(outputs)) {
      const rec = await until(h, name, 'SUCCEEDED');
      const size = statSync(rec.log).size;
      for (const args of [
        ['--json', name],
        ['-f', '--json', name],
      ]) {
        const r = await h.run('bgmon-tail', args);
        assert.is(r.code, 0, r.stderr);
        assert.equal(lines(r.stdout), [{ name, id: rec.id, line: text, offset: size, partial: true }], args.join(' '));
      }
      // from the cursor it gives: nothing left, nothing stuck
      const next = await h.run('bgmon-tail', ['--json', '--since', `${rec.id}:${size}`, name]);
      assert.equal([next.code, next.stdout, next.stderr], [0, '', '']);
    }
  }),
);

slowTest(
  'tail --json of a running job still holds back a character being written, then prints it whole',
  withHome(async (h) => {
    const script = 'printf "z\\342\\202"; while [ ! -e go ]; do sleep 0.05; done; printf "\\254 done\\n"';
    const rec = await h.start('w', ['sh', '-c', script], ['--cwd', h.dir]);
    await until(h, 'w', (r) => r.log_bytes === 3);
    const first = await h.run('bgmon-tail', ['--json', 'w']);
    assert.equal(lines(first.stdout), [{ name: 'w', id: rec.id, line: 'z', offset: 1, partial: true }]);
    writeFileSync(join(h.dir, 'go'), '');
    await until(h, 'w', 'SUCCEEDED');
    const rest = await h.run('bgmon-tail', ['--json', '--since', `${rec.id}:1`, 'w']);
    assert.equal(lines(rest.stdout), [{ name: 'w', id: rec.id, line: '\u20ac done', offset: 10 }]);
  }),
);

slowTest(
  '--follow refuses the options it cannot apply (--idle, --history) instead of ignoring them',
  withHome(async (h) => {
    await h.start('busy', ['sleep', '30']);
    for (const [args, message] of [
      [['--idle', '1h'], '--follow and --idle: use them in separate calls'],
      [['--history', 'busy'], '--follow prints changes from now on; --history cannot follow'],
    ] as const) {
      for (const until of [[], ['--until-done']]) {
        const r = await h.run('bgmon-status', ['--follow', ...until, ...args], { timeoutMs: 5000 });
        assert.equal([r.code, r.stdout, r.stderr], [2, '', `bgmon-status: ${message}\n`], args.join(' '));
      }
    }
  }),
);

slowTest(
  '--follow that misses a removal (rm, then a new run of the name) says "removed", never skips the old run',
  withHome(async (h) => {
    const a1 = await h.start('a', ['sleep', '30']);
    const b1 = await h.start('b', ['true']);
    const c1 = await h.start('c', ['true']);
    await until(h, 'b', 'SUCCEEDED');
    await until(h, 'c', 'SUCCEEDED');
    const { child, done } = spawnCollect(node, [binPath('bgmon-status'), '--follow', 'a', 'b', 'c'], { env: h.env });
    let seen = '';
    child.stdout!.on('data', (chunk) => (seen += chunk));
    try {
      await eventually(() => seen.split('\n').length > 3, 10_000, 'the current lines');
      // the follower is held still while both names are removed and started again (a busy machine)
      process.kill(child.pid!, 'SIGSTOP');
      const rm = await h.run('bgmon-rm', ['--stop', '--grace', '5s', 'a', 'b']);
      assert.is(rm.code, 0, rm.stderr);
      const a2 = await h.start('a', ['sleep', '30']);
      const b2 = await h.start('b', ['true']);
      await until(h, 'b', 'SUCCEEDED');
      // and a plain rerun, whose replaced run is kept (and was seen ended): nothing more of it
      const c2 = await h.start('c', ['true']);
      await until(h, 'c', 'SUCCEEDED');
      process.kill(child.pid!, 'SIGCONT');
      await eventually(() => [a2, b2, c2].every((x) => seen.includes(x.id)), 10_000, 'the new runs');
      process.kill(child.pid!, 'SIGTERM');
      const r = await done;
      assert.is(r.code, 143, r.stderr);
      assert.equal(
        lines(r.stdout).map((x) => [x.event, x.name, x.id, x.status]),
        [
          ['current', 'a', a1.id, 'RUNNING'],
          ['current', 'b', b1.id, 'SUCCEEDED'],
          ['current', 'c', c1.id, 'SUCCEEDED'],
          ['removed', 'a', a1.id, 'RUNNING'],
          ['started', 'a', a2.id, 'RUNNING'],
          ['removed', 'b', b1.id, 'SUCCEEDED'],
          ['ended', 'b', b2.id, 'SUCCEEDED'],
          ['ended', 'c', c2.id, 'SUCCEEDED'],
        ],
      );
    } finally {
      child.kill('SIGKILL');
    }
  }),
);

test(
  'the table says when a run started with --in or --at will start (NOTE "starts HH:MM")',
  withHome(async (h) => {
    const later = await h.start('later', ['true'], ['--in', '2h']);
    const now = await h.start('now', ['sleep', '30']);
    const r = await h.run('bgmon-status', ['--table'], { env: { COLUMNS: '200' } });
    assert.is(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split('\n');
    assert.match(header, /^NAME +STATUS +PID +START +AGE +EXIT +NOTE +CMD$/);
    const row = rows.find((x) => x.startsWith('later '))!;
    assert.match(row, new RegExp(`^later +QUEUED +- +- +\\S+ +- +starts ${shortTime(later.not_before)} +true$`));
    assert.match(rows.find((x) => x.startsWith('now '))!, new RegExp(`^now +RUNNING +${now.pid} `));
  }),
);

slowTest(
  'bgmon-rm of a name prints every run it removes: the past runs kept for it, then the current one',
  withHome(async (h) => {
    const runs: any[] = [];
    for (const i of [1, 2, 3]) {
      runs.push(await h.start('a', ['echo', `run${i}`]));
      await until(h, 'a', 'SUCCEEDED');
    }
    const other = await h.start('b', ['true']);
    await until(h, 'b', 'SUCCEEDED');
    const r = await h.run('bgmon-rm', ['a', 'b']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => [x.name, x.id, x.status]),
      [...runs, other].map((x) => [x.name, x.id, 'SUCCEEDED']),
    );
    // and that is the truth on disk: nothing of either name is left
    assert.equal(listDir(join(h.root, 'history')), []);
    assert.equal(listDir(join(h.root, 'logs')), []);
    const left = await h.run('bgmon-status', ['--history', '--json']);
    assert.equal([left.code, left.stdout], [0, '']);
  }),
);

slowTest(
  'tail --since with several runs says how many it got',
  withHome(async (h) => {
    const first = await h.start('a', ['true']);
    await until(h, 'a', 'SUCCEEDED');
    await h.start('a', ['true']);
    const r = await h.run('bgmon-tail', ['--since', `${first.id}:0`, 'a', `a@${first.id}`]);
    assert.equal([r.code, r.stdout, r.stderr], [2, '', 'bgmon-tail: --since: a cursor belongs to one job, got 2\n']);
  }),
);

slowTest(
  "--resources: a record copied from another home is not given that home's job's memory and CPU",
  withHome(async (a) => {
    const x = await a.start('x', ['sleep', '30']);
    await withHome(async (b) => {
      await b.start('y', ['sleep', '30']);
      copyFileSync(join(a.root, 'jobs', 'x.json'), join(b.root, 'jobs', 'x.json'));
      const there = lines((await b.run('bgmon-status', ['--resources', '--json'])).stdout);
      const copied = there.find((r) => r.name === 'x');
      assert.is(copied.pid, x.pid);
      assert.equal([copied.rss_kb, copied.cpu_ms, copied.procs, copied.cpu_pct], [null, null, null, null]);
      assert.is(there.find((r) => r.name === 'y').procs, 1, "the home's own job is counted");
      // in its own home, the job is counted
      const [own] = lines((await a.run('bgmon-status', ['--resources', '--json', 'x'])).stdout);
      assert.is(own.procs, 1);
      assert.ok(own.rss_kb > 0, JSON.stringify(own));
    })();
  }),
);

slowTest(
  '--follow --until-done: a job removed before its end was seen exits 3, as bgmon-wait does',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    await h.start('a', ['sleep', '30']);
    await h.start('b', ['sh', '-c', `while [ ! -e ${go} ]; do sleep 0.05; done`]);
    const args = [binPath('bgmon-status'), '--follow', '--until-done', 'a', 'b'];
    const { child, done } = spawnCollect(node, args, { env: h.env });
    let seen = '';
    child.stdout!.on('data', (chunk) => (seen += chunk));
    try {
      await eventually(() => seen.split('\n').length > 2, 10_000, 'the current lines');
      process.kill(child.pid!, 'SIGSTOP');
      const rm = await h.run('bgmon-rm', ['--stop', 'a']);
      assert.is(rm.code, 0, rm.stderr);
      process.kill(child.pid!, 'SIGCONT');
      await eventually(() => seen.includes('"removed"'), 10_000, 'the removal');
      writeFileSync(go, '');
      const r = await done;
      assert.is(r.code, 3, r.stdout);
      assert.equal(
        lines(r.stdout).map((x) => [x.event, x.name, x.status]),
        [
          ['current', 'a', 'RUNNING'],
          ['current', 'b', 'RUNNING'],
          ['removed', 'a', 'RUNNING'],
          ['ended', 'b', 'SUCCEEDED'],
        ],
      );
    } finally {
      child.kill('SIGKILL');
    }
  }),
);

slowTest(
  'bgmon-rm --finished --older-than keeps a past run named as NAME@ID that ended more recently',
  withHome(async (h) => {
    const first = await h.start('a', ['true']);
    await until(h, 'a', 'SUCCEEDED');
    await h.start('a', ['true']);
    await until(h, 'a', 'SUCCEEDED');
    const kept = await h.run('bgmon-rm', ['--finished', '--older-than', '1d', `a@${first.id}`]);
    assert.equal([kept.code, kept.stdout], [0, ''], kept.stderr);
    const history = lines((await h.run('bgmon-status', ['--history', '--json', 'a'])).stdout);
    assert.equal(history.map((r) => r.id)[0], first.id, 'the past run is still there');
    const gone = await h.run('bgmon-rm', ['--finished', '--older-than', '0', `a@${first.id}`]);
    assert.equal(
      lines(gone.stdout).map((r) => r.id),
      [first.id],
    );
  }),
);

slowTest(
  'an option named like an inherited property (--constructor, --__proto__) is an unknown option, not a crash',
  withHome(async (h) => {
    const all = ['--constructor', '--__proto__=1', '--no-toString', '-hasOwnProperty'];
    for (const bin of [...BINS, 'bgmon-rm', 'bgmon']) {
      for (const opt of bin === 'bgmon-status' ? all : all.slice(0, 2)) {
        const args = bin === 'bgmon' ? ['status', opt] : [opt, 'x'];
        const r = await h.run(bin, args);
        const shown = bin === 'bgmon' ? 'bgmon-status' : bin;
        const name = opt.split('=')[0];
        assert.equal([r.code, r.stdout, r.stderr], [2, '', `${shown}: unknown option ${name} (see --help)\n`], opt);
      }
    }
  }),
);

slowTest(
  '--env: a refusal never shows a value; a variable named __proto__ reaches the job on every path',
  withHome(async (h) => {
    for (const word of ['MY-TOKEN=hunter2', 'hunter2', '=hunter2', '1X=hunter2']) {
      const r = await h.run('bgmon-start', ['--env', word, '--', 'true']);
      assert.is(r.code, 2, word);
      assert.is(r.stderr.split('\n').length, 2, r.stderr);
      assert.not.ok(r.stderr.includes('hunter2'), `the value was shown: ${r.stderr}`);
    }
    const spec = JSON.stringify({ name: 's', cmd: ['true'], env: { 'MY-TOKEN': 'hunter2' } });
    const bad = await h.run('bgmon-start', ['-'], { input: `${spec}\n` });
    assert.is(bad.code, 2);
    assert.not.ok(bad.stderr.includes('hunter2'), bad.stderr);
    // env.__proto__ = v sets an object's prototype: the variable was listed in env_keys but lost
    const show = ['sh', '-c', 'env | grep "^__proto__="'];
    await h.start('direct', show, ['--env', '__proto__=v1']);
    await h.start('gate', ['sleep', '0.3']);
    await h.start('queued', show, ['--env', '__proto__=v2', '--after', 'gate']);
    const line = JSON.stringify({ name: 'spec', cmd: show, env: { __proto__: 'v3' } }).replace(
      '"env":{}',
      '"env":{"__proto__":"v3"}',
    );
    assert.is((await h.run('bgmon-start', ['-'], { input: `${line}\n` })).code, 0);
    await h.run('bgmon-wait', ['direct', 'queued', 'spec', '--timeout', '20s']);
    await h.run('bgmon-start', ['--again', 'direct']);
    await until(h, 'direct', 'SUCCEEDED');
    for (const n of ['direct', 'queued', 'spec']) await untilOnDisk(h, n, 'SUCCEEDED');
    const logOf = (name: string) => readFileSync(join(h.root, 'logs', `${name}.log`), 'utf8');
    assert.equal(
      ['direct', 'queued', 'spec'].map((n) => [n, h.record(n).status, logOf(n)]),
      [
        ['direct', 'SUCCEEDED', '__proto__=v1\n'],
        ['queued', 'SUCCEEDED', '__proto__=v2\n'],
        ['spec', 'SUCCEEDED', '__proto__=v3\n'],
      ],
    );
  }),
);

test.run();
