// bgmon-tail at the edges: -f drains every byte a job wrote before it exits, whatever the
// reader's speed or the number of jobs; huge lines stream in bounded memory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  closeSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { environHas, listPids } from 'bgmon-state';
import { binPath, eventually, lines, slowTest, until, withHome, type TestHome } from '../helpers';

const BIG = 100_000_000;
// Generous: node itself takes ~45 MB; holding the 100 MB line took 340 MB.
const RSS_LIMIT_KB = 100 * 1024;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** A preload that reports the process's peak resident memory on stderr as it exits. */
function peakReporter(h: TestHome): string {
  const file = join(h.dir, 'peak.js');
  writeFileSync(
    file,
    `process.on('exit', () => {
  const kb = /VmHWM:\\s*(\\d+) kB/.exec(require('fs').readFileSync('/proc/self/status', 'latin1'))[1];
  require('fs').writeSync(2, 'peak-kb ' + kb + '\\n');
});\n`,
  );
  return file;
}

/** Runs bgmon-tail under a shell (for pipes and redirections); `rest` is appended to its command. */
function tailShell(h: TestHome, args: string[], rest: string, peak = false) {
  const argv = [process.execPath, ...(peak ? ['-r', peakReporter(h)] : []), binPath('bgmon-tail'), ...args];
  return h.run('/bin/sh', ['-c', `${argv.map(quote).join(' ')} ${rest}`], { timeoutMs: 60_000 });
}

function peakKb(stderr: string): number {
  const m = /peak-kb (\d+)/.exec(stderr);
  if (!m) throw new Error(`no peak reported: ${stderr}`);
  return Number(m[1]);
}

/** The first and last `n` bytes of a file. */
function ends(path: string, n: number): [string, string] {
  const fd = openSync(path, 'r');
  try {
    const size = statSync(path).size;
    const head = Buffer.alloc(Math.min(n, size));
    const tail = Buffer.alloc(Math.min(n, size));
    readSync(fd, head, 0, head.length, 0);
    readSync(fd, tail, 0, tail.length, size - tail.length);
    return [head.toString('latin1'), tail.toString('latin1')];
  } finally {
    closeSync(fd);
  }
}

const seqLines = (n: number) => Array.from({ length: n }, (_, i) => String(i + 1));

/** What a process has open, as paths ([] once it is gone). */
function openFiles(pid: number): string[] {
  try {
    return readdirSync(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
  } catch {
    return [];
  }
}

/**
 * Waits until a bgmon-tail of this home has every one of these jobs' logs open and has made its
 * inotify watches, which it does only after printing each log's last lines: from then on it
 * follows. Jobs gated on a file are released only then: a job that wrote before tail's first
 * read would rightly show its last 10 lines only, so a fixed sleep (or the log's fd alone: it is
 * open before that first read) made these tests depend on the machine's load.
 */
async function tailHasOpened(h: TestHome, names: string[]): Promise<void> {
  const logs = names.map((n) => join(h.root, 'logs', `${n}.log`));
  const isTail = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('bgmon-tail');
    } catch {
      return false;
    }
  };
  const following = (files: string[]) => logs.every((l) => files.includes(l)) && files.includes('anon_inode:inotify');
  const opened = () =>
    listPids().some((pid) => isTail(pid) && environHas(pid, `BGMON_HOME=${h.root}`) && following(openFiles(pid)));
  await eventually(opened, 20_000, `bgmon-tail to open and follow ${names.join(', ')}`);
}

/** A shell script that waits for `go` to exist, then runs `script`. */
const gated = (go: string, script: string) => `while [ ! -e ${quote(go)} ]; do sleep 0.02; done; ${script}`;

test(
  'tail -f prints every one of 100000 lines, run after run, to a fast and to a slow reader',
  withHome(async (h) => {
    for (let run = 0; run < 3; run++) {
      const go = join(h.dir, `go-${run}`);
      await h.start('t', ['sh', '-c', gated(go, 'seq 1 100000')]);
      const follower = h.run('bgmon-tail', ['-f', 't'], { timeoutMs: 60_000 });
      await tailHasOpened(h, ['t']);
      writeFileSync(go, '');
      const r = await follower;
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stderr, '');
      const got = r.stdout.split('\n');
      assert.is(got.length - 1, 100_000, `run ${run}: line count`);
      assert.ok(r.stdout === seqLines(100_000).join('\n') + '\n', `run ${run}: lines in order, none twice`);
    }
    // The reader takes nothing for a second: tail blocks on a full pipe while the job ends.
    const go = join(h.dir, 'go-slow');
    await h.start('t', ['sh', '-c', gated(go, 'seq 1 100000')]);
    const follower = tailShell(h, ['-f', 't'], '| (sleep 1; wc -l)');
    await tailHasOpened(h, ['t']);
    writeFileSync(go, '');
    const slow = await follower;
    assert.is(slow.code, 0, slow.stderr);
    assert.is(slow.stdout.trim(), '100000', 'slow reader');
  }),
);

/** Splits `name | line` output by name, asserting every line has a known prefix. */
function byName(text: string, names: string[]): Map<string, string[]> {
  const found = new Map<string, string[]>(names.map((n) => [n, []]));
  for (const line of text.split('\n').slice(0, -1)) {
    const m = /^(\S+) \| (.*)$/.exec(line);
    assert.ok(m && found.has(m[1]), `unexpected line ${JSON.stringify(line.slice(0, 80))}`);
    found.get(m![1])!.push(m![2]);
  }
  return found;
}

slowTest(
  'tail -f on several jobs drains each fully, in order, to a fast and a slow reader',
  withHome(async (h) => {
    const names = ['p1', 'p2', 'p3'];
    const outFile = join(h.dir, 'out');
    for (const reader of ['fast', 'slow']) {
      const go = join(h.dir, `go-${reader}`);
      for (const name of names) await h.start(name, ['sh', '-c', gated(go, `seq 1 50000; printf ${name}-end`)]);
      const follower =
        reader === 'fast'
          ? h.run('bgmon-tail', ['-f', 'p*'], { timeoutMs: 60_000 })
          : tailShell(h, ['-f', 'p*'], `| (sleep 1; cat > ${quote(outFile)})`);
      await tailHasOpened(h, names);
      writeFileSync(go, '');
      const r = await follower;
      assert.is(r.code, 0, r.stderr);
      const found = byName(reader === 'fast' ? r.stdout : readFileSync(outFile, 'latin1'), names);
      for (const name of names) {
        const got = found.get(name)!;
        assert.is(got.length, 50_001, `${reader} reader, ${name}: line count`);
        const want = [...seqLines(50_000), `${name}-end`].join('\n');
        assert.ok(got.join('\n') === want, `${reader} reader, ${name}: every line once, in order`);
      }
    }
  }),
);

slowTest(
  'tail -f streams a 100 MB line without newline in bounded memory and ends with the job',
  withHome(async (h) => {
    await h.start('flat', ['sh', '-c', `sleep 0.5; head -c ${BIG} /dev/zero | tr '\\0' x`]);
    const outFile = join(h.dir, 'out');
    const r = await tailShell(h, ['-f', 'flat'], `> ${quote(outFile)}`, true);
    assert.is(r.code, 0, r.stderr);
    assert.is((await h.status('flat')).status, 'SUCCEEDED');
    assert.is(statSync(outFile).size, BIG + 1, 'every byte, then a newline closing the line');
    assert.equal(ends(outFile, 4), ['xxxx', 'xxx\n']);
    const kb = peakKb(r.stderr);
    assert.ok(kb < RSS_LIMIT_KB, `tail -f peaked at ${kb} kB`);
  }),
);

slowTest(
  'tail -n 1 prints a 100 MB last line in flat memory; --json splits it into 1 MiB records',
  withHome(async (h) => {
    await h.start('wide', ['sh', '-c', `echo first; echo second; head -c ${BIG} /dev/zero | tr '\\0' x`]);
    await until(h, 'wide', 'SUCCEEDED', 60_000);
    const outFile = join(h.dir, 'out');
    const r = await tailShell(h, ['-n', '1', 'wide'], `> ${quote(outFile)}`, true);
    assert.is(r.code, 0, r.stderr);
    assert.is(statSync(outFile).size, BIG + 1, 'the last line and a newline, nothing before it');
    assert.equal(ends(outFile, 4), ['xxxx', 'xxx\n']);
    const kb = peakKb(r.stderr);
    assert.ok(kb < RSS_LIMIT_KB, `tail -n 1 peaked at ${kb} kB`);

    const two = await tailShell(h, ['-n', '2', 'wide'], '| head -c 10');
    assert.is(two.stdout, 'second\nxxx', '-n 2 starts at the line before');

    const json = await tailShell(h, ['-n', '1', '--json', 'wide'], `> ${quote(outFile)}`, true);
    assert.is(json.code, 0, json.stderr);
    const records = readFileSync(outFile, 'latin1').split('\n').slice(0, -1);
    const piece = 1024 * 1024;
    assert.is(records.length, Math.ceil(BIG / piece));
    records.forEach((text, i) => {
      const rec = JSON.parse(text);
      assert.is(rec.name, 'wide');
      assert.is(rec.line.length, i < records.length - 1 ? piece : BIG % piece, `record ${i}`);
    });
    const jsonKb = peakKb(json.stderr);
    assert.ok(jsonKb < 2 * RSS_LIMIT_KB, `tail --json peaked at ${jsonKb} kB`);
  }),
);

test(
  'a line split for --json or several jobs is cut between UTF-8 characters',
  withHome(async (h) => {
    // 600,000 two-byte characters: 1.2 MB, more than one 1 MiB record, cut at an odd byte
    const manyE = `head -c 600000 /dev/zero | tr '\\0' '\\001' | sed 's/\\x01/é/g'`;
    await h.start('utf', ['sh', '-c', `printf 'a'; ${manyE}; echo; echo next`]);
    await h.start('other', ['sh', '-c', 'echo other']);
    await until(h, 'utf', 'SUCCEEDED');
    const expected = 'a' + 'é'.repeat(600_000);
    // to a file: the test's pipe reader would decode chunk by chunk and break characters itself
    const outFile = join(h.dir, 'out');
    const json = await tailShell(h, ['utf', '--json', '-n', '2'], `> ${quote(outFile)}`);
    assert.is(json.code, 0, json.stderr);
    const recs = lines(readFileSync(outFile, 'utf8'));
    assert.is(recs.length, 3);
    assert.ok(!recs.some((r) => r.line.includes('\uFFFD')), 'no character broken in two');
    assert.ok(recs[0].line + recs[1].line === expected, 'the pieces rebuild the line');
    assert.is(recs[2].line, 'next');
    const prefixed = await tailShell(h, ['utf', 'other', '-f', '-n', '2'], `> ${quote(outFile)}`);
    assert.is(prefixed.code, 0, prefixed.stderr);
    const parts = readFileSync(outFile, 'utf8').split('\n').slice(0, -1);
    assert.is(parts.length, 4);
    assert.ok(parts.slice(0, 2).every((p) => p.startsWith('utf | ') && Buffer.byteLength(p) <= 6 + 1024 * 1024));
    assert.ok(parts[0].slice(6) + parts[1].slice(6) === expected);
    assert.equal(parts.slice(2), ['utf | next', 'other | other']);
  }),
);

test(
  'tail -f with a log that gains bytes without newlines shows them before the line ends',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    await h.start('prompt', [
      'sh',
      '-c',
      `printf 'waiting...'; while [ ! -e ${go} ]; do sleep 0.05; done; echo ' done'`,
    ]);
    const outFile = join(h.dir, 'out');
    const follower = tailShell(h, ['-f', 'prompt'], `> ${quote(outFile)}`);
    await eventually(
      () => {
        try {
          return readFileSync(outFile, 'latin1') === 'waiting...';
        } catch {
          return false;
        }
      },
      10_000,
      'the unfinished line to be printed',
    );
    writeFileSync(go, '');
    const r = await follower;
    assert.is(r.code, 0, r.stderr);
    assert.is(readFileSync(outFile, 'latin1'), 'waiting... done\n');
  }),
);

test(
  'a link planted at the log path is not read through: nothing of the file it points to is printed',
  withHome(async (h) => {
    const secret = join(h.dir, 'secret');
    writeFileSync(secret, 'secret line\n');
    const rec = await h.start('linked', ['sh', '-c', 'echo own line']);
    await until(h, 'linked', 'SUCCEEDED');
    unlinkSync(rec.log);
    symlinkSync(secret, rec.log);
    for (const args of [['linked'], ['-n', '5', 'linked'], ['--json', 'linked'], ['-f', 'linked']]) {
      const r = await h.run('bgmon-tail', args, { timeoutMs: 20_000 });
      assert.not.match(r.stdout, /secret/, args.join(' '));
      assert.not.match(r.stderr, /secret line/, args.join(' '));
    }
  }),
);

slowTest(
  'a run that has started but has no readable log is named on stderr, exit 1; the other jobs are still printed',
  withHome(async (h) => {
    await h.start('gone', ['sh', '-c', 'echo lost']);
    await h.start('kept', ['sh', '-c', 'echo here']);
    await h.start('fifo', ['sh', '-c', 'echo old']);
    assert.is((await h.run('bgmon-wait', ['gone', 'kept', 'fifo'])).code, 0);
    const logs = join(h.root, 'logs');
    unlinkSync(join(logs, 'gone.log'));
    const gone = `bgmon-tail: gone: its log is gone: ${join(logs, 'gone.log')}\n`;
    for (const args of [
      ['gone', 'kept'],
      ['-f', 'gone', 'kept'],
      ['--json', 'gone', 'kept'],
    ]) {
      const r = await h.run('bgmon-tail', args);
      assert.is(r.code, 1, args.join(' '));
      assert.is(r.stderr, gone, args.join(' '));
      assert.ok(r.stdout.includes('here'), args.join(' '));
    }
    // a link planted at the path is not read through, and not passed over in silence either
    symlinkSync(join(logs, 'kept.log'), join(logs, 'gone.log'));
    const link = await h.run('bgmon-tail', ['gone']);
    assert.equal([link.code, link.stdout], [1, '']);
    assert.is(link.stderr, `bgmon-tail: gone: its log is not a regular file, not read: ${join(logs, 'gone.log')}\n`);
    // a past run's kept log replaced by a FIFO: said at once (opening it must not block)
    const old = h.record('fifo');
    await h.start('fifo', ['sh', '-c', 'echo new']);
    const kept = join(logs, `fifo@${old.id}.log`);
    unlinkSync(kept);
    execFileSync('mkfifo', [kept]);
    const r = await h.run('bgmon-tail', [`fifo@${old.id}`], { timeoutMs: 10_000 });
    assert.equal([r.code, r.signal, r.stdout], [1, null, '']);
    assert.is(r.stderr, `bgmon-tail: fifo: its log is not a regular file, not read: ${kept}\n`);
  }),
);

test(
  'a job that has not started has no log yet: nothing printed, nothing said, exit 0',
  withHome(async (h) => {
    await h.start('first', ['sleep', '30'], ['--queue', 'q']);
    await h.start('second', ['true'], ['--queue', 'q']);
    assert.is((await h.status('second')).status, 'QUEUED');
    const r = await h.run('bgmon-tail', ['second']);
    assert.equal([r.code, r.stdout, r.stderr], [0, '', '']);
  }),
);

test.run();
