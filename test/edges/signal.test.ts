// bgmon-signal, PAUSED, and what pausing means for the supervisor, bgmon-stop, -status and -wait.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bootId, environHas, readStat } from 'bgmon-state';
import {
  eventually,
  isAlive,
  lines,
  listDir,
  masked,
  sleep,
  slowTest,
  withHome,
  withForeignJob,
  type Result,
  type TestHome,
} from '../helpers';

const stateOf = (pid: number) => readStat(pid)?.state;
const SIGSTOP = 19;
/**
 * Runs none of its code until continued: stopped, or (a shell that vforked a child the same STOP
 * caught before exec) waiting in D state for that child with a SIGSTOP pending.
 */
const stopped = (pid: number) =>
  stateOf(pid) === 'T' || (stateOf(pid) === 'D' && (masked(pid, 'ShdPnd', SIGSTOP) || masked(pid, 'SigPnd', SIGSTOP)));

/** Every live process of the job's session or carrying its marker, with its state. */
function jobStates(pgid: number): Map<number, string> {
  const found = new Map<number, string>();
  for (const e of listDir('/proc')) {
    const st = /^\d+$/.test(e) ? readStat(Number(e)) : null;
    if (st && st.state !== 'Z' && (st.pgrp === pgid || st.session === pgid)) found.set(st.pid, st.state);
  }
  return found;
}

async function signal(h: TestHome, args: string[], opts = {}): Promise<Result> {
  return h.run('bgmon-signal', args, opts);
}

function one(r: Result, status: string, code = 0): any {
  assert.is(r.code, code, r.stdout + r.stderr);
  const recs = lines(r.stdout);
  assert.is(recs.length, 1, r.stdout);
  assert.is(recs[0].status, status, r.stdout);
  return recs[0];
}

/** The process has a handler for signal number n. */
const catches = (pid: number, n: number) => masked(pid, 'SigCgt', n);

// Runs about 2 s of its own time in 0.1 s steps, then exits 5: a pause must not count as running.
const COUNTER = 'i=0; while [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done; echo done; exit 5';

slowTest(
  'a paused job stays PAUSED for longer than it would run; the supervisor (dash wait) records no end; CONT: its ' +
    'true exit 5',
  withHome(async (h) => {
    // the work starts only once the job is paused and released, so a slow machine cannot let it
    // finish before the pause lands
    const go = join(h.dir, 'go');
    const rec = await h.start('counter', ['sh', '-c', `until [ -e ${go} ]; do sleep 0.05; done; ${COUNTER}`]);
    const paused = one(await signal(h, ['counter', 'STOP']), 'PAUSED');
    assert.is(paused.id, rec.id);
    assert.ok(stopped(rec.pid), 'the leader is stopped');
    assert.is(stateOf(rec.sup_pid) === 'T', false, 'the supervisor is never signalled');
    writeFileSync(go, '');
    await sleep(3500); // longer than the job's 2 s of work
    assert.ok(isAlive(rec.sup_pid), 'the supervisor still waits');
    assert.is(h.record('counter').status, 'RUNNING', 'no end folded into the record');
    const endFile = readFileSync(join(h.root, 'jobs', `.counter@${rec.id}.end`), 'latin1');
    assert.match(endFile, /^ +$/, 'the end file is still only reserved (no end written)');
    assert.is(readFileSync(rec.log, 'utf8'), '', 'no work done while paused');
    one(await h.run('bgmon-status', ['counter', '--json']), 'PAUSED');
    const table = await h.run('bgmon-status', ['--table']);
    assert.match(table.stdout, /^counter\s+PAUSED\s+\d+\s/m);
    const waited = await h.run('bgmon-wait', ['counter', '--timeout', '1s']);
    one(waited, 'PAUSED', 124);
    const resumed = one(await signal(h, ['counter', 'CONT']), 'RUNNING');
    assert.is(resumed.exit_code, null);
    const end = one(await h.run('bgmon-wait', ['counter'], { timeoutMs: 60_000 }), 'FAILED', 5);
    assert.is(end.exit_code, 5);
    assert.is(end.signal, null);
    assert.is(readFileSync(rec.log, 'utf8'), 'done\n');
  }),
);

test(
  'bgmon-wait keeps waiting on a PAUSED job and returns when it ends after CONT',
  withHome(async (h) => {
    // the job ends only once the test releases it (not after a sleep the load could outlast), so
    // it is surely alive when STOP and CONT arrive
    const release = join(h.dir, 'release');
    const rec = await h.start('w', ['sh', '-c', `while [ ! -e '${release}' ]; do sleep 0.05; done; exit 4`]);
    one(await signal(h, ['w', 'STOP']), 'PAUSED');
    let returned = false;
    const waiting = h.run('bgmon-wait', ['w'], { timeoutMs: 60_000 }).finally(() => (returned = true));
    await sleep(1500);
    assert.ok(isAlive(rec.pid) && stopped(rec.pid), 'still paused');
    assert.not.ok(returned, 'bgmon-wait still waits on the paused job');
    one(await signal(h, ['w', 'CONT']), 'RUNNING'); // still waiting for its release: surely RUNNING
    assert.not.ok(returned, 'bgmon-wait still waits on the running job');
    writeFileSync(release, '');
    const end = one(await waiting, 'FAILED', 4);
    assert.ok(Date.parse(end.ended_at) - Date.parse(end.started_at) >= 1500, 'it ended only after the pause');
  }),
);

slowTest(
  'TSTP pauses a job that leaves TSTP at its default (the kernel drops it in an orphaned group); a job that ' +
    'catches TSTP gets TSTP',
  withHome(async (h) => {
    const plain = await h.start('plain', ['sleep', '1000']);
    one(await signal(h, ['plain', 'TSTP']), 'PAUSED');
    assert.ok(stopped(plain.pid));
    one(await signal(h, ['plain', 'cont']), 'RUNNING');
    const cwd = h.subdir('catcher');
    // no children: a shell's trap would wait for its (stopped) sleep, as after Ctrl-Z on a terminal
    const handler =
      "process.on('SIGTSTP', () => require('fs').appendFileSync('got', 'tstp\\n')); setInterval(() => {}, 1000)";
    const catcher = await h.start('catcher', [process.execPath, '-e', handler], ['--cwd', cwd]);
    await eventually(() => catches(catcher.pid, 20), 10_000, 'the SIGTSTP handler');
    const r = await signal(h, ['catcher', 'SIGTSTP']);
    one(r, 'RUNNING'); // it chose not to stop: that is the truth
    await eventually(() => existsSync(join(cwd, 'got')), 10_000, 'the trap to run');
    await sleep(300);
    assert.is(readFileSync(join(cwd, 'got'), 'utf8'), 'tstp\n', 'delivered once');
    assert.ok(!stopped(catcher.pid));
  }),
);

slowTest(
  'HUP reaches the group and an escaped (setsid) child exactly once each; the job keeps running',
  withHome(async (h) => {
    const cwd = h.subdir('web');
    const child = 'trap "echo hup >> child" HUP; touch child-ready; while :; do sleep 0.05; done';
    const script = `setsid sh -c '${child}' & trap "echo hup >> leader" HUP; while :; do sleep 0.05; done`;
    const rec = await h.start('web', ['sh', '-c', script], ['--cwd', cwd]);
    await eventually(() => existsSync(join(cwd, 'child-ready')), 10_000, 'the escaped child');
    await sleep(200);
    one(await signal(h, ['web', 'HUP']), 'RUNNING');
    await eventually(() => existsSync(join(cwd, 'leader')) && existsSync(join(cwd, 'child')), 10_000, 'both traps');
    await sleep(500);
    assert.is(readFileSync(join(cwd, 'leader'), 'utf8'), 'hup\n');
    assert.is(readFileSync(join(cwd, 'child'), 'utf8'), 'hup\n');
    assert.ok(isAlive(rec.pid));
    // STOP pauses the escaped child too, and CONT resumes it
    const escaped = escapedProcesses(rec);
    assert.ok(escaped.length > 0, 'the escaped child exists');
    one(await signal(h, ['web', 'STOP']), 'PAUSED');
    await eventually(() => escaped.every(stopped), 5000, 'the escaped child stopped');
    one(await signal(h, ['web', 'CONT']), 'RUNNING');
    await eventually(() => escaped.every((p) => !stopped(p)), 5000, 'the escaped child resumed');
  }),
);

slowTest(
  'a shell caught by STOP between vfork and exec (D state, stop pending) is PAUSED, in signal and status alike',
  withHome(async (h) => {
    // dash vforks each /bin/true: most of the loop's time is spent between vfork and exec, where
    // the parent waits in D state for a child that the same SIGSTOP has stopped
    const rec = await h.start('spin', ['sh', '-c', 'while :; do /bin/true; done']);
    let caughtInVfork = 0;
    // until the case has happened twice (most rounds catch it; a fast machine may need more)
    for (let round = 0; round < 40 && caughtInVfork < 2; round++) {
      one(await signal(h, ['spin', 'STOP']), 'PAUSED');
      if (stateOf(rec.pid) === 'D') caughtInVfork++;
      assert.ok(stopped(rec.pid), `round ${round}: the leader runs no code`);
      one(await h.run('bgmon-status', ['spin', '--json']), 'PAUSED');
      one(await signal(h, ['spin', 'CONT']), 'RUNNING');
    }
    // the case itself happened (else this test proves nothing about it)
    assert.ok(caughtInVfork > 0, 'no STOP landed between vfork and exec in 40 rounds');
    one(await signal(h, ['spin', 'STOP']), 'PAUSED');
    const stop = await h.run('bgmon-stop', ['spin', '--grace', '30s'], { timeoutMs: 60_000 });
    const stoppedRec = one(stop, 'STOPPED');
    assert.is(stoppedRec.signal, 'SIGTERM', 'TERM then CONT ended it, with no KILL after the grace');
  }),
);

// A program with threads whose main thread vforks: the SIGSTOP may be taken by another thread,
// which stops, while the main thread waits in D state for the stopped child, no stop pending.
const THREADED_VFORK = [
  'import subprocess, threading, time',
  'threading.Thread(target=lambda: [time.sleep(0.01) for _ in iter(int, 1)], daemon=True).start()',
  'while True: subprocess.run(["/bin/true"])',
].join('\n');
const hasPython = spawnSync('python3', ['-c', 'import subprocess, threading']).status === 0;

(hasPython ? slowTest : test.skip)(
  `threads: a stop taken by another thread while the main thread waits on vfork is PAUSED${
    hasPython ? '' : ' (SKIPPED: no python3 here)'
  }`,
  withHome(async (h) => {
    const rec = await h.start('threads', ['python3', '-c', THREADED_VFORK]);
    await sleep(500);
    let caughtInVfork = 0;
    for (let round = 0; round < 40 && caughtInVfork < 2; round++) {
      one(await signal(h, ['threads', 'STOP']), 'PAUSED');
      if (stateOf(rec.pid) === 'D') caughtInVfork++;
      one(await h.run('bgmon-status', ['threads', '--json']), 'PAUSED');
      one(await signal(h, ['threads', 'CONT']), 'RUNNING');
    }
    assert.ok(caughtInVfork > 0, 'no STOP landed while the main thread waited on vfork in 40 rounds');
    one(await signal(h, ['threads', 'STOP']), 'PAUSED');
    one(await h.run('bgmon-stop', ['threads', '--grace', '30s'], { timeoutMs: 60_000 }), 'STOPPED');
  }),
);

/** Leaders of other sessions carrying the job's marker (children that called setsid). */
function escapedProcesses(rec: any): number[] {
  return listDir('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const st = readStat(pid);
      return (
        st && st.state !== 'Z' && st.session === pid && pid !== rec.pid && environHas(pid, `BGMON_JOB_ID=${rec.id}`)
      );
    });
}

test(
  'bgmon-stop of a PAUSED job: TERM then CONT, its trap runs (exit 3) long before the grace, STOPPED',
  withHome(async (h) => {
    const rec = await h.start('trapper', ['sh', '-c', 'trap "exit 3" TERM; while :; do sleep 0.1; done']);
    one(await signal(h, ['trapper', 'STOP']), 'PAUSED');
    await sleep(300);
    const r = await h.run('bgmon-stop', ['trapper', '--grace', '40s'], { timeoutMs: 90_000 });
    const end = one(r, 'STOPPED');
    assert.is(r.stderr, '');
    assert.is(end.exit_code, 3, 'the TERM trap ran: TERM, not the SIGKILL after the grace');
    assert.is(end.signal, null);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    assert.equal([...jobStates(rec.pid).keys()], []);
  }),
);

slowTest(
  'bgmon-stop --signal STOP is not undone by a CONT: SIGKILL after the grace ends it',
  withHome(async (h) => {
    await h.start('s', ['sleep', '1000']);
    const r = await h.run('bgmon-stop', ['s', '--signal', 'STOP', '--grace', '500ms']);
    const end = one(r, 'STOPPED');
    assert.is(end.signal, 'SIGKILL');
  }),
);

slowTest(
  '--status PAUSED filters; names and NDJSON on stdin; an empty stdin signals nothing (exit 0)',
  withHome(async (h) => {
    await h.start('a', ['sleep', '1000']);
    await h.start('b', ['sleep', '1000']);
    await h.start('c', ['sleep', '1000']);
    const ab = await signal(h, ['a', 'b', 'STOP']);
    assert.is(ab.code, 0, ab.stderr);
    assert.equal(
      lines(ab.stdout).map((r) => [r.name, r.status]),
      [
        ['a', 'PAUSED'],
        ['b', 'PAUSED'],
      ],
    );
    const paused = await h.run('bgmon-status', ['--status', 'paused', '--json']);
    assert.equal(
      lines(paused.stdout).map((r) => r.name),
      ['a', 'b'],
    );
    assert.equal(
      lines((await h.run('bgmon-status', ['--status', 'RUNNING', '--json'])).stdout).map((r) => r.name),
      ['c'],
    );
    const resumed = await signal(h, ['CONT'], { input: paused.stdout });
    assert.is(resumed.code, 0, resumed.stderr);
    assert.equal(
      lines(resumed.stdout).map((r) => [r.name, r.status]),
      [
        ['a', 'RUNNING'],
        ['b', 'RUNNING'],
      ],
    );
    const dash = await signal(h, ['-', 'STOP'], { input: '{"name":"c"}\n' });
    assert.equal(
      lines(dash.stdout).map((r) => r.status),
      ['PAUSED'],
    );
    const globbed = await signal(h, ['*', 'CONT']);
    assert.equal(
      lines(globbed.stdout).map((r) => r.status),
      ['RUNNING', 'RUNNING', 'RUNNING'],
    );
    const empty = await signal(h, ['HUP'], { input: '' });
    assert.equal([empty.code, empty.stdout, empty.stderr], [0, '', '']);
  }),
);

test(
  'ended, QUEUED and STALE jobs: nothing signalled, exit 1 with one line why; usage errors exit 2; no such job 3',
  withHome(async (h) => {
    await h.start('done', ['true']);
    await h.run('bgmon-wait', ['done']);
    const ended = await signal(h, ['done', 'HUP']);
    one(ended, 'SUCCEEDED', 1);
    assert.is(
      ended.stderr,
      'bgmon-signal: job done is SUCCEEDED: a job that has ended cannot be signalled; SIGHUP not sent\n',
    );
    const liveJob = await h.start('live', ['sleep', '1000']);
    await h.start('later', ['true'], ['--after', 'live']);
    const queued = await signal(h, ['later', 'STOP']);
    one(queued, 'QUEUED', 1);
    assert.is(queued.stderr, 'bgmon-signal: job later is QUEUED: it has no process yet; nothing signalled\n');
    // a mix: the live job is signalled, the ended one is reported, exit 1
    const mixed = await signal(h, ['live', 'done', 'STOP']);
    assert.is(mixed.code, 1);
    assert.equal(
      lines(mixed.stdout)
        .map((r) => r.status)
        .sort(),
      ['PAUSED', 'SUCCEEDED'],
    );
    assert.is(mixed.stderr.split('\n').length, 2, mixed.stderr);
    assert.ok(stopped(liveJob.pid));
    // STALE: the record's pid now belongs to another process (here: this test runner)
    const me = readStat(process.pid)!;
    const live = { status: 'RUNNING', pid: process.pid, boot_id: bootId(), ended_at: null, exit_code: null };
    h.writeRecord('stale', {
      ...h.record('done'),
      ...live,
      name: 'stale',
      id: 'forged-stale',
      starttime: me.starttime + 1,
    });
    const stale = await signal(h, ['stale', 'STOP']);
    assert.is(stale.code, 1);
    assert.match(
      stale.stderr,
      /^bgmon-signal: job stale is STALE: pid \d+ now belongs to another process .*; nothing signalled\n$/,
    );
    assert.ok(!stopped(process.pid));
    // a forged record naming a live process that is not a job: refused like bgmon-stop refuses it
    h.writeRecord('forged', { ...h.record('done'), ...live, name: 'forged', id: 'forged-x', starttime: me.starttime });
    const forged = await signal(h, ['forged', 'STOP']);
    assert.is(forged.code, 1);
    assert.match(
      forged.stderr,
      new RegExp(
        String.raw`^bgmon-signal: job forged: pid \d+ does not lead its own process group and session, ` +
          String.raw`so it is not a bgmon job; nothing signalled\n$`,
      ),
    );
    for (const [args, msg] of [
      [[], /^bgmon-signal: missing SIG/],
      [['live'], /^bgmon-signal: unknown signal "live" \(the last argument is the signal\)$/],
      [['live', 'NOPE'], /^bgmon-signal: unknown signal "NOPE"/],
      [['live', '0'], /^bgmon-signal: unknown signal "0"/],
      [['live', '-', 'HUP'], /^bgmon-signal: "-" \(read names from stdin\) must be the only name$/],
      [['../x', 'HUP'], /^bgmon-signal: /],
      [['live', '--nope', 'HUP'], /^bgmon-signal: unknown option --nope/],
    ] as [string[], RegExp][]) {
      const r = await signal(h, args, { input: '' });
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.match(r.stderr.trimEnd(), msg);
      assert.is(r.stderr.split('\n').length, 2, r.stderr);
    }
    const bad = await signal(h, ['CONT'], { input: '{"name":"live"}\nnot json\n' });
    assert.equal([bad.code, bad.stdout], [2, '']);
    assert.ok(stopped(liveJob.pid), 'malformed stdin: nothing signalled');
    const missing = await signal(h, ['live', 'nope*', 'CONT']);
    assert.equal([missing.code, missing.stdout, missing.stderr], [3, '', 'bgmon-signal: no such job: nope*\n']);
    assert.ok(stopped(liveJob.pid), 'a missing name: nothing signalled');
  }),
);

test(
  'bgmon signal, --help and --version',
  withHome(async (h) => {
    const help = await h.run('bgmon-signal', ['--help']);
    assert.is(help.code, 0);
    assert.match(help.stdout, /^Usage: bgmon-signal NAME\|GLOB\.\.\. SIG\n/);
    assert.match(help.stdout, /\nExit status:\n {2}\S/);
    assert.match(help.stdout, /\nExamples:\n/);
    assert.match((await h.run('bgmon-signal', ['--version'])).stdout, /^bgmon-signal \d+\.\d+\.\d+\n$/);
    assert.match((await h.run('bgmon', ['--help'])).stdout, /^ {2}signal\s+\S/m);
    await h.start('j', ['sleep', '1000']);
    one(await h.run('bgmon', ['signal', 'j', 'STOP']), 'PAUSED');
  }),
);

const epermTest = process.getuid?.() === 0 ? test : test.skip;

epermTest('a job bgmon-signal may not signal (EPERM): exit 1 and why, the job untouched', () =>
  withForeignJob(async ({ jobPid, runAsNobody }) => {
    const r = await runAsNobody('bgmon-signal', ['rootjob', 'STOP']);
    assert.is(r.code, 1, r.stdout + r.stderr);
    assert.is(
      r.stderr,
      `bgmon-signal: job rootjob: kill() of pid ${jobPid} with SIGSTOP was refused (EPERM: operation not permitted)\n`,
    );
    assert.is(lines(r.stdout)[0].status, 'RUNNING');
    assert.ok(isAlive(jobPid) && !stopped(jobPid));
  }),
);

test.run();
