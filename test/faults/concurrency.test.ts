// Races: many starters at once, and bgmon-start killed at any point of its work.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, readStat } from 'bgmon-state';
import {
  binPath,
  eventually,
  isAlive,
  listDir,
  processes,
  schemaProblems,
  sleep,
  slowTest,
  spawnCollect,
  untilLocksReleased,
  untilOnDisk,
  withHome,
} from '../helpers';

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'latin1');

slowTest(
  '50 concurrent bgmon-start --name same: one job runs, 49 exit 1, one intact record, one log',
  withHome(async (h) => {
    const runs = await Promise.all(
      Array.from({ length: 50 }, () =>
        h.run('bgmon-start', ['--name', 'same', '--', 'sleep', '1000'], { timeoutMs: 60_000 }),
      ),
    );
    const codes = runs.map((r) => r.code);
    assert.is(codes.filter((c) => c === 0).length, 1, `exit codes: ${codes.join(',')}`);
    assert.is(codes.filter((c) => c === 1).length, 49);
    for (const r of runs.filter((x) => x.code === 1))
      assert.match(r.stderr, /^bgmon-start: job same is RUNNING; stop it or pick another name\n$/);
    const winner = JSON.parse(runs.find((r) => r.code === 0)!.stdout);
    const rec = h.record('same');
    assert.equal(rec, winner);
    assert.is(schemaProblems(rec), null);
    assert.equal(
      listDir(join(h.root, 'jobs')),
      [`.same@${rec.id}.end`, `.same@${rec.id}.spare`, 'same.json'],
      'no temp files left',
    );
    assert.equal(listDir(join(h.root, 'logs')), ['same.log']);
    const sleepers = processes(
      (st) => environHas(st.pid, `BGMON_HOME=${h.root}`) && cmdline(st.pid).startsWith('sleep'),
    );
    assert.equal(
      sleepers.map((st) => st.pid),
      [rec.pid],
      'exactly one job process',
    );
  }),
);

/** How long one uninterrupted bgmon-start takes here (the slowest of three), in ms. */
async function fullStartMs(env: Record<string, string>): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < 3; i++) {
    const r = await spawnCollect(process.execPath, [binPath('bgmon-start'), '--name', `probe${i}`, '--', 'true'], {
      env,
    }).done;
    assert.is(r.code, 0, r.stderr);
    slowest = Math.max(slowest, r.ms);
  }
  return slowest;
}

slowTest(
  'bgmon-start SIGKILLed at 100 points of its run: never a torn record, never a job running without one',
  withHome(async (h) => {
    const env = { ...h.env };
    // The kills sweep evenly from 0 to 1.35 times a full start: the early ones land before any
    // record, the later ones after bgmon-start has finished, the rest anywhere in between. The
    // last ten land once the record is on disk (or the start has exited), whatever the load: a
    // start slowed after the probe (CI ran 2 of 100 to a record once) still gets some.
    const full = await fullStartMs(env);
    for (let i = 0; i < 100; i++) {
      const child = spawn(process.execPath, [binPath('bgmon-start'), '--name', `k${i}`, '--', 'sleep', '1000'], {
        env,
        stdio: 'ignore',
      });
      let exited = false;
      const closed = new Promise((r) => child.once('close', r));
      child.once('exit', () => (exited = true));
      if (i < 90) await sleep((i / 100) * 1.5 * full);
      else await eventually(() => exited || existsSync(join(h.root, 'jobs', `k${i}.json`)), 30_000, `k${i}'s record`);
      child.kill('SIGKILL');
      await closed;
    }
    await sleep(300); // a gated job whose starter died exits on its own
    const jobsDir = join(h.root, 'jobs');
    const records = new Map<string, any>();
    for (const f of listDir(jobsDir)) {
      // a start killed mid-write may leave its private temp file (never read as a record)
      if (f.startsWith('.')) assert.match(f, /^\.(k\d+|probe\d)(@[0-9a-z]+-[0-9a-f]{8}\.(end|spare)|\.\d+\.\d+\.tmp)$/);
      if (!f.endsWith('.json') || f.startsWith('.') || f.startsWith('probe')) continue;
      const rec = JSON.parse(readFileSync(join(jobsDir, f), 'utf8'));
      assert.is(schemaProblems(rec), null, f);
      records.set(rec.name, rec);
    }
    // kills at 0 ms land before node has even started; kills after a full start land after it
    assert.ok(
      records.size >= 5 && records.size <= 95,
      `${records.size} of 100 killed starts wrote a record (full start: ${full} ms)`,
    );
    const running = processes(
      (st) => environHas(st.pid, `BGMON_HOME=${h.root}`) && cmdline(st.pid).startsWith('sleep'),
    );
    for (const { pid } of running) {
      const name = /BGMON_JOB=([^\0]+)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))![1];
      const rec = records.get(name);
      assert.ok(rec, `job process ${pid} (${name}) runs without a record`);
      assert.is(rec.pid, pid);
      assert.is(rec.status, 'RUNNING');
    }
    const runningPids = running.map((st) => st.pid);
    for (const rec of records.values()) {
      if (rec.status === 'RUNNING' && isAlive(rec.pid)) assert.ok(runningPids.includes(rec.pid));
    }
    // the kernel released every lock with its holder: each name can be used again at once, and
    // only a name whose job runs is refused
    for (const name of ['k0', 'k50', 'k99']) {
      const rec = records.get(name);
      const runs = rec !== undefined && runningPids.includes(rec.pid);
      const again = await h.run('bgmon-start', ['--name', name, '--', 'true'], { timeoutMs: 10_000 });
      assert.is(again.code, runs ? 1 : 0, `${name}: ${again.stderr}`);
      if (runs) assert.match(again.stderr, /^bgmon-start: job k\d+ is RUNNING/);
      assert.ok(again.ms < 5000, `${name}: took ${again.ms} ms`);
    }
  }),
);

test(
  'name locks: a live holder is waited for; a dead or abandoned one is broken',
  withHome(async (h) => {
    await h.start('seed', ['true']);
    const run = join(h.root, 'run');
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
    // held by a live process (this test runner): bgmon-start waits for it
    writeFileSync(join(run, 'held.lock'), `${process.pid} ${readStat(process.pid)!.starttime} ${boot}\n`, {
      mode: 0o600,
    });
    const waiting = h.run('bgmon-start', ['--name', 'held', '--', 'true']);
    await sleep(600);
    assert.not.ok(existsSync(join(h.root, 'jobs', 'held.json')), 'no record while the lock is held');
    unlinkSync(join(run, 'held.lock'));
    assert.is((await waiting).code, 0);
    // held by a process that no longer exists, or by one from another boot: broken at once
    writeFileSync(join(run, 'dead.lock'), `${2 ** 22 + 7} 12345 ${boot}\n`, { mode: 0o600 });
    writeFileSync(
      join(run, 'reboot.lock'),
      `${process.pid} ${readStat(process.pid)!.starttime} 00000000-0000-0000-0000-000000000000\n`,
      { mode: 0o600 },
    );
    // created but never written (its writer died in between), long ago
    writeFileSync(join(run, 'empty.lock'), '', { mode: 0o600 });
    utimesSync(join(run, 'empty.lock'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    for (const name of ['dead', 'reboot', 'empty']) {
      const r = await h.run('bgmon-start', ['--name', name, '--', 'true'], { timeoutMs: 10_000 });
      assert.is(r.code, 0, `${name}: ${r.stderr}`);
      assert.ok(r.ms < 5000, `${name} took ${r.ms} ms`);
    }
    // each job's own end takes its name's lock a moment to fold; a lock left for good fails here
    for (const name of ['seed', 'held', 'dead', 'reboot', 'empty']) await untilOnDisk(h, name, 'SUCCEEDED');
    await untilLocksReleased(h.root);
  }),
);

test.run();
