// bgmon-tail --since and --max-bytes with real jobs: a log read in steps through cursors gives
// every byte exactly once; reruns and truncation are said on stderr; budgets keep the newest lines.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { eventually, lines, slowTest, untilWatching, withHome, type TestHome } from '../helpers';

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const cursorOf = (rec: any) => `${rec.id}:${rec.offset}`;
/** The log bytes that --json records stand for: a line, then its newline unless it is partial. */
const rebuild = (recs: any[]) => Buffer.concat(recs.map((r) => Buffer.from(r.partial ? r.line : `${r.line}\n`)));
const logOf = (h: TestHome, name: string) => readFileSync(join(h.root, 'logs', `${name}.log`));
const waitFor = (path: string, what: string) => eventually(() => existsSync(path), 20_000, what);
const ended = (h: TestHome, name: string) =>
  eventually(async () => (await h.status(name)).status === 'SUCCEEDED', 20_000, `${name} to end`);

async function since(h: TestHome, name: string, cursor: string, extra: string[] = []) {
  const r = await h.run('bgmon-tail', ['--json', '--since', cursor, ...extra, name], { timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  return { recs: lines(r.stdout), stderr: r.stderr };
}

/** A shell line that waits until `file` exists. */
const until = (file: string) => `while [ ! -e ${quote(file)} ]; do sleep 0.02; done`;

test(
  'a job writing in bursts, read with cursors between bursts: every byte once, in order',
  withHome(async (h) => {
    const bursts = [
      'seq 1 1000',
      "printf 'half-line'", // the next call starts in the middle of this line
      "printf ' rest\\n'; seq 1 5",
      "head -c 1572864 /dev/zero | tr '\\0' y; echo", // printed as 1 MiB pieces, then the rest
      "printf 'caf\\303'", // a character cut in two by the end of a burst
      "printf '\\251 ok\\n'; seq 1 20000",
      ':', // nothing new
    ];
    const step = (k: number) =>
      `${until(join(h.dir, `go-${k}`))}; ${bursts[k]}; : > ${quote(join(h.dir, `done-${k}`))}`;
    const rec = await h.start('b', ['sh', '-c', bursts.map((_, k) => step(k)).join('; ')]);
    let cursor = `${rec.id}:0`;
    const got: Buffer[] = [];
    for (let k = 0; k < bursts.length; k++) {
      writeFileSync(join(h.dir, `go-${k}`), '');
      await waitFor(join(h.dir, `done-${k}`), `burst ${k}`);
      const { recs, stderr } = await since(h, 'b', cursor);
      assert.is(stderr, '', `burst ${k}`);
      assert.ok(
        recs.every((r) => r.name === 'b' && r.id === rec.id),
        `burst ${k}: name and run id on every line`,
      );
      assert.ok(!recs.some((r) => r.line.includes('\uFFFD')), `burst ${k}: no character broken`);
      got.push(rebuild(recs));
      if (recs.length > 0) cursor = cursorOf(recs[recs.length - 1]);
      assert.is(
        Number(cursor.split(':')[1]),
        Buffer.concat(got).length,
        `burst ${k}: the cursor is where the output ends`,
      );
    }
    await ended(h, 'b');
    const last = await since(h, 'b', cursor);
    assert.equal(last.recs, [], 'nothing new after the end');
    assert.ok(Buffer.concat(got).equals(logOf(h, 'b')), 'the pieces put together are the log');
  }),
);

slowTest(
  'a log read with cursors while the job writes: every byte once, whatever the timing',
  withHome(async (h) => {
    // Burst i is written only once the test creates go-i, and each read follows a release without
    // waiting for that burst to finish: reads interleave with the writes by construction (they may
    // land mid-burst, mid-line), not because the machine happened to be fast enough.
    const BURSTS = 12;
    const burst = 'while [ ! -e go-$i ]; do sleep 0.02; done; seq 1 300; printf "p$i"';
    const rec = await h.start('w', ['sh', '-c', `for i in $(seq 1 ${BURSTS}); do ${burst}; done`], ['--cwd', h.dir]);
    let cursor = `${rec.id}:0`;
    const got: Buffer[] = [];
    let reads = 0;
    for (let done = false; !done; reads++) {
      if (reads < BURSTS) writeFileSync(join(h.dir, `go-${reads + 1}`), '');
      // the state first: once the job is seen ended, one more call reads all it wrote
      done = (await h.status('w')).status === 'SUCCEEDED';
      const { recs, stderr } = await since(h, 'w', cursor);
      assert.is(stderr, '');
      got.push(rebuild(recs));
      if (recs.length > 0) cursor = cursorOf(recs[recs.length - 1]);
    }
    // it cannot end before the last release: one read per burst at least
    assert.ok(reads >= BURSTS, `read in ${reads} calls`);
    assert.ok(Buffer.concat(got).equals(logOf(h, 'w')), 'the pieces put together are the log');
  }),
);

test(
  'a cursor in the middle of a partial line goes on from exactly that byte (plain, --json, -f)',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const rec = await h.start('m', ['sh', '-c', `printf abc; ${until(go)}; sleep 0.3; printf 'def\\nghi\\n'`]);
    await eventually(() => logOf(h, 'm').length === 3, 10_000, 'abc');
    const first = await h.run('bgmon-tail', ['--json', 'm']);
    assert.equal(lines(first.stdout), [{ name: 'm', id: rec.id, line: 'abc', offset: 3, partial: true }]);
    const follower = h.run('bgmon-tail', ['-f', '--since', `${rec.id}:3`, 'm']);
    writeFileSync(go, '');
    await ended(h, 'm');
    const f = await follower;
    assert.is(f.code, 0, f.stderr);
    assert.is(f.stdout, 'def\nghi\n', '-f from the cursor');
    assert.is(f.stderr, '');
    const { recs, stderr } = await since(h, 'm', `${rec.id}:3`);
    assert.is(stderr, '');
    assert.equal(recs, [
      { name: 'm', id: rec.id, line: 'def', offset: 7 },
      { name: 'm', id: rec.id, line: 'ghi', offset: 11 },
    ]);
    const plain = await h.run('bgmon-tail', ['--since', `${rec.id}:5`, 'm']);
    assert.is(plain.stdout, 'f\nghi\n');
    assert.equal((await since(h, 'm', `${rec.id}:11`)).recs, [], 'a cursor at the end: nothing');
  }),
);

test(
  'a cursor into a replaced run: one stderr line, then the current log from its start',
  withHome(async (h) => {
    const old = await h.start('r', ['sh', '-c', 'echo one; echo two']);
    await ended(h, 'r');
    const before = lines((await h.run('bgmon-tail', ['--json', 'r'])).stdout);
    const cursor = cursorOf(before[before.length - 1]);
    assert.is(cursor, `${old.id}:8`);
    const now = await h.start('r', ['sh', '-c', 'echo three']);
    await ended(h, 'r');
    const { recs, stderr } = await since(h, 'r', cursor);
    assert.equal(recs, [{ name: 'r', id: now.id, line: 'three', offset: 6 }]);
    assert.is(stderr.split('\n').length, 2, 'one line');
    assert.match(stderr, `the cursor is for run ${old.id}, the current run is ${now.id}`);
    const plain = await h.run('bgmon-tail', ['--since', cursor, 'r']);
    assert.is(plain.stdout, 'three\n');
    assert.is(plain.code, 0);
  }),
);

test(
  'a log truncated under a cursor by its own job: said on stderr, read from its start, also with -f',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const go2 = join(h.dir, 'go2');
    const cut = join(h.dir, 'cut');
    const rec = await h.start('t', [
      'sh',
      '-c',
      [
        'seq 1 100',
        until(go),
        ': > "$BGMON_HOME/logs/$BGMON_JOB.log"',
        'echo after',
        `: > ${quote(cut)}`,
        until(go2),
        'echo more',
      ].join('; '),
    ]);
    await eventually(() => logOf(h, 't').length === 292, 10_000, 'seq 1 100');
    const cursor = `${rec.id}:292`;
    assert.equal((await since(h, 't', cursor)).recs, []);
    const follower = h.run('bgmon-tail', ['-f', '--json', '--since', cursor, 't'], { timeoutMs: 60_000 });
    await untilWatching(h, 'bgmon-tail'); // following by file events before the truncation
    writeFileSync(go, '');
    await waitFor(cut, 'the truncation');
    const { recs, stderr } = await since(h, 't', cursor);
    assert.equal(recs, [{ name: 't', id: rec.id, line: 'after', offset: 6 }]);
    assert.is(stderr.split('\n').length, 2, 'one line');
    assert.match(stderr, 'log truncated below the cursor (6 bytes now, cursor at 292)');
    writeFileSync(go2, '');
    await ended(h, 't');
    const next = await since(h, 't', cursorOf(recs[0]));
    assert.equal(next.recs, [{ name: 't', id: rec.id, line: 'more', offset: 11 }]);
    assert.is(next.stderr, '');
    const f = await follower;
    assert.is(f.code, 0, f.stderr);
    assert.equal(
      lines(f.stdout).map((r) => [r.line, r.offset]),
      [
        ['after', 6],
        ['more', 11],
      ],
    );
    // noticed while following, or (on a slow machine) when the follower first opened the log
    assert.match(
      f.stderr,
      new RegExp(
        String.raw`^bgmon-tail: t: log truncated( below the cursor)? \(\d+ bytes now, (was|cursor at) 292\): ` +
          String.raw`printing from its start\n$`,
      ),
    );

    // the log written directly: shorter than the cursor
    writeFileSync(join(h.root, 'logs', 't.log'), 'x\n');
    const direct = await since(h, 't', `${rec.id}:11`);
    assert.equal(direct.recs, [{ name: 't', id: rec.id, line: 'x', offset: 2 }]);
    assert.match(direct.stderr, 'log truncated below the cursor (2 bytes now, cursor at 11)');
  }),
);

/** The newest whole lines of `text` (a last line without newline counts) that fit in `budget` bytes. */
function newest(text: Buffer, budget: number): Buffer {
  if (text.length <= budget) return text;
  for (let p = text.length - budget; p <= text.length; p++) if (text[p - 1] === 10) return text.subarray(p);
  return Buffer.alloc(0);
}

slowTest(
  '--max-bytes keeps the newest whole lines, says what it left out, and gives a cursor to go on',
  withHome(async (h) => {
    const content =
      Array.from({ length: 60 }, (_, i) => `${'x'.repeat((i * 37) % 53)}#${i}`).join('\n') + '\npartial-end';
    writeFileSync(join(h.dir, 'content'), content);
    const rec = await h.start('c', ['cat', join(h.dir, 'content')]);
    await ended(h, 'c');
    const log = logOf(h, 'c');
    for (const budget of [0, 1, 5, 11, 12, 50, 100, 333, 1000, log.length - 1, log.length, log.length + 10]) {
      const want = newest(log, budget);
      const r = await h.run('bgmon-tail', ['--since', `${rec.id}:0`, '--max-bytes', String(budget), 'c']);
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stdout, want.length > 0 ? `${want}\n` : '', `budget ${budget}`);
      const left = log.length - want.length;
      assert.is(
        r.stderr,
        left > 0
          ? `bgmon-tail: c: left out ${left} bytes of older output (--max-bytes ${budget}); ` +
              `output ends at cursor ${rec.id}:${log.length}\n`
          : '',
        `budget ${budget}`,
      );
      const j = lines(
        (await h.run('bgmon-tail', ['--json', '--since', `${rec.id}:0`, '--max-bytes', String(budget), 'c'])).stdout,
      );
      assert.ok(rebuild(j).equals(want), `budget ${budget}: --json`);
      if (j.length > 0) assert.is(j[j.length - 1].offset, log.length);
    }
    // without --since: the last -n lines, then the budget
    const r = await h.run('bgmon-tail', ['-n', '3', '--max-bytes', '1K', 'c']);
    assert.is(r.stdout, `${content.split('\n').slice(-3).join('\n')}\n`);
    assert.is(r.stderr, '');
    const cut = await h.run('bgmon-tail', ['-n', '3', '--max-bytes', '20', 'c']);
    assert.is(cut.stdout, 'partial-end\n');
    assert.match(cut.stderr, /^bgmon-tail: c: left out \d+ bytes of older output \(--max-bytes 20\)\n$/);
    // with --since, -n says what it left out too
    const n = await h.run('bgmon-tail', ['--since', `${rec.id}:0`, '-n', '1', 'c']);
    assert.is(n.stdout, 'partial-end\n');
    assert.is(
      n.stderr,
      `bgmon-tail: c: left out ${log.length - 11} bytes of older output (-n 1); output ends at cursor ` +
        `${rec.id}:${log.length}\n`,
    );
  }),
);

test(
  '--max-bytes over several jobs: the budget is shared, each keeps its newest lines',
  withHome(async (h) => {
    await h.start('a', ['sh', '-c', 'seq 100 199']);
    await h.start('b', ['sh', '-c', 'seq 500 599']);
    await ended(h, 'a');
    await ended(h, 'b');
    const r = await h.run('bgmon-tail', ['--max-bytes', '41', '-n', '1000', 'a', 'b']);
    assert.is(r.code, 0, r.stderr);
    // 20 bytes each: 5 lines of "NNN\n"
    assert.is(
      r.stdout,
      ['195', '196', '197', '198', '199'].map((x) => `a | ${x}\n`).join('') +
        ['595', '596', '597', '598', '599'].map((x) => `b | ${x}\n`).join(''),
    );
    assert.is(r.stderr.split('\n').length, 3, 'one line per job');
  }),
);

slowTest(
  'malformed cursors and budgets: exit 2, one stderr line, nothing printed',
  withHome(async (h) => {
    const rec = await h.start('g', ['sh', '-c', 'echo hi']);
    await h.start('g2', ['sh', '-c', 'echo hi']);
    const bad = [
      '',
      'abc',
      ':5',
      `${rec.id}:`,
      `${rec.id}:-1`,
      `${rec.id}:1.5`,
      `${rec.id}:1e3`,
      `${rec.id}: 1`,
      `a/b:1`,
      `../x:1`,
      `${rec.id}:99999999999999999`,
      `${rec.id}:1:2`,
      `${rec.id}:0x10`,
    ];
    for (const cursor of bad) {
      const r = await h.run('bgmon-tail', ['--since', cursor, 'g']);
      assert.is(r.code, 2, `cursor ${JSON.stringify(cursor)}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.split('\n').length, 2, `cursor ${JSON.stringify(cursor)}: one line`);
    }
    const two = await h.run('bgmon-tail', ['--since', `${rec.id}:0`, 'g*']);
    assert.is(two.code, 2, 'a cursor belongs to one job');
    assert.is(two.stdout, '');
    for (const budget of ['', '-1', '1.5', 'x', '1T', '10 K']) {
      const r = await h.run('bgmon-tail', ['--max-bytes', budget, 'g']);
      assert.is(r.code, 2, `--max-bytes ${JSON.stringify(budget)}`);
      assert.is(r.stdout, '');
    }
  }),
);

test(
  '--since near the end of a 4 GiB log reads only the end',
  withHome(async (h) => {
    const rec = await h.start('huge', ['true']);
    await ended(h, 'huge');
    const path = join(h.root, 'logs', 'huge.log');
    const size = 4 * 2 ** 30;
    const fd = openSync(path, 'r+');
    try {
      ftruncateSync(fd, size); // sparse: no disk used
      writeSync(fd, Buffer.from('\nlast-1\nlast-2\n'), 0, 15, size);
    } finally {
      closeSync(fd);
    }
    // bytes read by the process, node's own start-up included (~0.3 MB), reported as it exits
    const reporter = join(h.dir, 'io.js');
    writeFileSync(
      reporter,
      `process.on('exit', () => {
  const n = /rchar:\\s*(\\d+)/.exec(require('fs').readFileSync('/proc/self/io', 'latin1'))[1];
  require('fs').writeSync(2, 'rchar ' + n + '\\n');
});\n`,
    );
    for (const extra of [[], ['-n', '10'], ['--max-bytes', '1K']]) {
      const r = await h.run('bgmon-tail', ['--since', `${rec.id}:${size + 1}`, ...extra, 'huge'], {
        env: { NODE_OPTIONS: `-r ${reporter}` },
      });
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stdout, 'last-1\nlast-2\n', extra.join(' '));
      const read = Number(/rchar (\d+)/.exec(r.stderr)?.[1]);
      assert.ok(read < 8 * 2 ** 20, `read ${read} bytes of a 4 GiB log (${extra.join(' ')})`);
    }
  }),
);

test.run();
