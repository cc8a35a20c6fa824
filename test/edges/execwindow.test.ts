// A process in the middle of an exec shows no environment in /proc/PID/environ (its old memory is
// released before the new one holds the strings): 4% of the reads of a process just exec'ed came
// back empty. A run started by its queue's hand-off is known to bgmon-stop and bgmon-signal only
// by its marker (its supervisor's argv names another run), so a stop that read its environment in
// that window refused the job ("carries no BGMON_JOB_ID"), exit 1, nothing signalled; CI caught
// it once in "bgmon-stop of queued jobs racing the hand-off". Here the window is held open: the
// job's command shows no environment (env -i) until a gate opens, then execs with its own.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  eventually,
  gatedJob,
  lines,
  processes,
  sleep,
  until,
  untilGone,
  withHome,
  type Result,
  type TestHome,
} from '../helpers';

// the job's command is a perl script (perl-base is Essential on Debian)
const hasPerl = spawnSync('perl', ['-e', '0']).status === 0;
const perlTest = hasPerl ? test : test.skip;

/** A process's argv as the kernel shows it ('' once it is gone). */
function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'latin1');
  } catch {
    return '';
  }
}

const BARE_THEN_OWN = [
  'my ($id, $job, $home, $ready, $gate) = @ARGV;',
  'open(my $f, ">", $ready) or die; close $f;',
  'select(undef, undef, undef, 0.02) until -e $gate;',
  '%ENV = (BGMON_JOB_ID => $id, BGMON_JOB => $job, BGMON_HOME => $home, PATH => "/usr/bin:/bin");',
  'exec "sleep", "1000";',
].join('\n');

/**
 * Starts `name` by the hand-off of queue x, its command showing no environment until `gate`
 * exists; runs `act` (a bgmon command) while it shows none and opens the gate a second later.
 */
async function whileBare(h: TestHome, name: string, act: () => Promise<Result>): Promise<{ r: Result; pid: number }> {
  const ready = join(h.dir, `${name}-ready`);
  const gate = join(h.dir, `${name}-gate`);
  const first = join(h.dir, `${name}-first`);
  await h.start(`${name}-before`, gatedJob(first), ['--queue', 'x']);
  const cmd = ['sh', '-c', 'exec env -i perl -e "$0" -- "$BGMON_JOB_ID" "$BGMON_JOB" "$BGMON_HOME" "$1" "$2"'];
  const queued = await h.start(name, [...cmd, BARE_THEN_OWN, ready, gate], ['--queue', 'x']);
  assert.is(queued.status, 'QUEUED');
  let pid = 0;
  try {
    writeFileSync(first, '');
    await eventually(() => existsSync(ready), 20_000, `${name} to run with no environment`);
    const rec = await h.status(name);
    assert.is(rec.status, 'RUNNING');
    pid = rec.pid;
    assert.is(readFileSync(`/proc/${pid}/environ`).length, 0, 'the job shows no environment (the window is open)');
    const acting = act();
    await sleep(1000);
    writeFileSync(gate, '');
    return { r: await acting, pid };
  } finally {
    // a job with no environment is not found by the home's cleanup: found by its unique argv
    writeFileSync(gate, '');
    for (const p of processes((st) => cmdline(st.pid).includes(gate))) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {}
    }
  }
}

perlTest(
  `bgmon-stop of a handed-off job caught between two execs waits for its environment, then stops it${hasPerl ? '' : ' (SKIPPED: no perl here)'}`,
  withHome(async (h) => {
    const { r, pid } = await whileBare(h, 'b', () => h.run('bgmon-stop', ['b', '--grace', '5s']));
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const [rec] = lines(r.stdout);
    assert.equal([rec.name, rec.status, rec.signal], ['b', 'STOPPED', 'SIGTERM']);
    await untilGone([pid], 'the stopped job');
  }),
);

perlTest(
  `bgmon-signal of a handed-off job caught between two execs waits for its environment, then signals it${hasPerl ? '' : ' (SKIPPED: no perl here)'}`,
  withHome(async (h) => {
    const { r, pid } = await whileBare(h, 'c', () => h.run('bgmon-signal', ['c', 'TERM']));
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['c'],
    );
    await untilGone([pid], 'the signalled job');
  }),
);

perlTest(
  `bgmon-signal of a handed-off job that execs itself over and over: every signal is sent${
    hasPerl ? '' : ' (SKIPPED: no perl here)'
  }`,
  withHome(async (h) => {
    // one exec after another, each in the job's own environment: a read of it may land in any of
    // them, and the check must decide on what one read shows (the exec may end between two reads)
    const loop = join(h.dir, 'loop.sh');
    writeFileSync(loop, `#!/bin/sh\nexec "$0"\n`, { mode: 0o755 });
    const first = join(h.dir, 'first');
    await h.start('before', gatedJob(first), ['--queue', 'y']);
    await h.start('spin', [loop], ['--queue', 'y']);
    writeFileSync(first, '');
    const rec = await until(h, 'spin', 'RUNNING', 20_000);
    const refused: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await h.run('bgmon-signal', ['spin', 'CONT']);
      if (r.code !== 0) refused.push(r.stderr.trim());
    }
    assert.equal(refused, [], 'no signal refused');
    const stop = await h.run('bgmon-stop', ['spin', '--grace', '5s']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].status, 'STOPPED');
    await untilGone([rec.pid], 'the stopped job');
  }),
);

test.run();
