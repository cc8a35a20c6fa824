import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { readStat } from '../../packages/bgmon-state/src/proc';
import { join } from 'node:path';
import { endedOnDisk, eventually, gatedJob, lines, masked, queueSpecs, until, withHome } from '../helpers';

// Issue 11, Performance: the queue's throughput (1,000 `true` jobs through 4 slots against
// tsp -S 4). What made it slow, pinned here so that it stays gone.

test(
  'a batch of quick jobs: its first launches never race the hand-off (no Node process per race)',
  withHome(async (h) => {
    // Node launches a batch's first runs one by one while the first ones already end: their
    // supervisors claimed the next runs meanwhile, and Node voiding such a claim sent that
    // supervisor to Node (a fold and a queue pass) at each race. Node now claims them all first.
    const [n, slots] = [200, 4];
    const sub = await h.run('bgmon-start', ['--slots', String(slots), '-'], { input: queueSpecs(n, ['true']) });
    assert.is(sub.code, 0, sub.stderr);
    const names = Array.from({ length: n }, (_, i) => `j${i}`);
    await eventually(() => names.every((name) => endedOnDisk(h, name)), 60_000, 'every job to end');
    const st = await h.run('bgmon-status', ['--json', ...names]);
    const recs = lines(st.stdout);
    assert.equal(
      recs.filter((r) => r.status !== 'SUCCEEDED').map((r) => [r.name, r.status]),
      [],
    );
    // Every supervisor goes to Node once, when its chain of hand-offs ends. Node launches at most
    // one run per slot, and its supervisor hands the slot on until the queue is empty; a claim Node
    // voids ends that supervisor's chain early, and Node launches the run with a supervisor of its
    // own: each race adds one. (Folded record files prove nothing: the pass made at the queue's
    // last end folds every run.)
    const supervisors = new Set(recs.map((r) => `${r.sup_pid} ${r.sup_starttime}`));
    assert.ok(supervisors.size <= slots, `${supervisors.size} supervisors ran ${n} jobs in ${slots} slots`);
  }),
);

for (const [way, env] of [
  ['perl', {}],
  ['the shell', { BGMON_NO_PERL: '1' }],
] as const) {
  test(
    `a handed-off job, started by ${way}: its own session, INT and QUIT at their defaults, its environment exactly`,
    withHome(async (h) => {
      const gate = join(h.dir, 'gate');
      await h.start('a', gatedJob(gate), ['--queue', 'e']);
      // names the job's chain itself uses (hand_sh's variables, perl's), each with a value of its own
      const own = { ...env, _: 'underscore', t: 'tee', st: 'ess', up: 'you', d: 'dee', PERL5OPT: '-MNo::Such' };
      const jobs: Array<[string, string[]]> = [
        ['b', ['env']],
        ['c', ['sleep', '30']],
      ];
      for (const [name, cmd] of jobs) {
        const r = await h.run('bgmon-start', ['--name', name, '--queue', 'e', '--', ...cmd], { env: own });
        assert.is(lines(r.stdout)[0]?.status, 'QUEUED', r.stderr);
      }
      writeFileSync(gate, '');
      const c = await until(h, 'c', 'RUNNING');
      const st = readStat(c.pid)!;
      assert.equal([st.pgrp, st.session], [c.pid, c.pid], 'pid = pgid = sid');
      assert.not.ok(masked(c.pid, 'SigIgn', 2) || masked(c.pid, 'SigIgn', 3), 'INT and QUIT not ignored');
      const stop = await h.run('bgmon-stop', ['c']);
      assert.is(stop.code, 0, stop.stderr);
      const seen = readFileSync(join(h.root, 'logs', 'b.log'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .sort();
      const b = await h.status('b');
      const want = Object.entries({ ...h.env, ...own, BGMON_JOB: 'b', BGMON_JOB_ID: b.id, PWD: h.dir })
        .filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
        .map(([k, v]) => `${k}=${v}`)
        .sort();
      assert.equal(seen, want);
      assert.is(b.status, 'SUCCEEDED');
    }),
  );

  test(
    `a handed-off job, started by ${way}, whose command is gone or not executable: 127 or 126, and why in its log`,
    withHome(async (h) => {
      const gate = join(h.dir, 'gate');
      await h.start('a', gatedJob(gate), ['--queue', 'x']);
      const [gone, denied] = [join(h.dir, 'gone.sh'), join(h.dir, 'denied.sh')];
      for (const [name, file] of [
        ['c', gone],
        ['d', denied],
      ]) {
        writeFileSync(file, '#!/bin/sh\necho ran\n', { mode: 0o755 });
        const r = await h.run('bgmon-start', ['--name', name, '--queue', 'x', '--', file], { env });
        assert.is(lines(r.stdout)[0]?.status, 'QUEUED', r.stderr);
      }
      unlinkSync(gone);
      chmodSync(denied, 0o644);
      writeFileSync(gate, '');
      const w = await h.run('bgmon-wait', ['c', 'd', '--timeout', '20s']);
      const [c, d] = [await h.status('c'), await h.status('d')];
      assert.equal([c.status, c.exit_code, d.status, d.exit_code], ['FAILED', 127, 'FAILED', 126], w.stdout);
      assert.match(readFileSync(join(h.root, 'logs', 'c.log'), 'utf8'), /exec: .*gone\.sh: not found\n$/);
      assert.match(readFileSync(join(h.root, 'logs', 'd.log'), 'utf8'), /exec: .*denied\.sh: Permission denied\n$/);
    }),
  );
}

// strace holds the handed-off job's exec of its command: the one way to stop it at that point
const STRACE = spawnSync('sh', ['-c', 'command -v strace']).stdout.toString().trim();
const PERL = spawnSync('sh', ['-c', 'PATH=/usr/bin:/bin command -v perl']).stdout.toString().trim();
const SLEEP = spawnSync('sh', ['-c', 'command -v sleep']).stdout.toString().trim();
const canHold = STRACE !== '' && PERL !== '' && spawnSync(STRACE, ['-o', '/dev/null', 'true']).status === 0;

(canHold ? test : test.skip)(
  `a job handed off by perl can be stopped between its start file and its command${
    canHold ? '' : ' (SKIPPED: needs perl and strace)'
  }`,
  withHome(async (h) => {
    // perl writes the start file (the run is RUNNING from then on) before it execs the command:
    // until then it must already carry the run's markers, or bgmon-stop refuses the job
    const gate = join(h.dir, 'gate');
    const a = await h.start('a', gatedJob(gate), ['--queue', 'p']);
    const b = await h.run('bgmon-start', ['--name', 'b', '--queue', 'p', '--', SLEEP, '30']);
    assert.is(lines(b.stdout)[0]?.status, 'QUEUED', b.stderr);
    const tracer = spawn(
      STRACE,
      ['-f', '-qq', '-o', '/dev/null', '-p', String(a.sup_pid), '-P', SLEEP, '-e', 'trace=execve'].concat([
        '-e',
        'inject=execve:delay_enter=4000000',
      ]),
      { stdio: 'ignore' },
    );
    const traced = () => /TracerPid:\s+[1-9]/.test(readFileSync(`/proc/${a.sup_pid}/status`, 'utf8'));
    try {
      await eventually(traced, 10_000, 'strace to attach to the supervisor');
      writeFileSync(gate, '');
      // held in a ptrace stop, the job reads PAUSED (its leader is stopped) until strace lets go
      const running = await until(h, 'b', (r) => r.pid !== null && ['RUNNING', 'PAUSED'].includes(r.status));
      assert.is(readFileSync(`/proc/${running.pid}/comm`, 'utf8'), 'perl\n', 'held before the exec of its command');
      const stop = await h.run('bgmon-stop', ['b']);
      assert.is(stop.code, 0, stop.stderr);
      assert.is(lines(stop.stdout)[0]?.status, 'STOPPED');
    } finally {
      tracer.kill('SIGKILL');
      writeFileSync(gate, '');
    }
  }),
);

test.run();
