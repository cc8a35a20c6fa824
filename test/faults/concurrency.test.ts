// Races: many starters at once, and bgmon-start killed at any point of its work.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, listPids, readStat } from 'bgmon-state';
import { binPath, isAlive, listDir, schemaProblems, sleep, withHome } from '../helpers';

test('50 concurrent bgmon-start --name same: one job runs, 49 exit 1, one intact record, one log', withHome(async (h) => {
  const runs = await Promise.all(Array.from({ length: 50 }, () => h.run('bgmon-start', ['--name', 'same', '--', 'sleep', '1000'], { timeoutMs: 60_000 })));
  const codes = runs.map((r) => r.code);
  assert.is(codes.filter((c) => c === 0).length, 1, `exit codes: ${codes.join(',')}`);
  assert.is(codes.filter((c) => c === 1).length, 49);
  for (const r of runs.filter((x) => x.code === 1)) assert.match(r.stderr, /^bgmon-start: job same is RUNNING; stop it or pick another name\n$/);
  const winner = JSON.parse(runs.find((r) => r.code === 0)!.stdout);
  const rec = h.record('same');
  assert.equal(rec, winner);
  assert.is(schemaProblems(rec), null);
  assert.equal(listDir(join(h.root, 'jobs')), [`.same@${rec.id}.end`, `.same@${rec.id}.spare`, 'same.json'], 'no temp files left');
  assert.equal(listDir(join(h.root, 'logs')), ['same.log']);
  const sleepers = listPids().filter((p) => environHas(p, 'BGMON_JOB=same') && readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('sleep'));
  assert.equal(sleepers, [rec.pid], 'exactly one job process');
}));

test('bgmon-start SIGKILLed at random points, 100 times: never a torn record, never a job running without one', withHome(async (h) => {
  const env = { ...h.env };
  let withRecord = 0;
  for (let i = 0; i < 100; i++) {
    const name = `k${i}`;
    const child = spawn(process.execPath, [binPath('bgmon-start'), '--name', name, '--', 'sleep', '1000'], { env, stdio: 'ignore' });
    const closed = new Promise((r) => child.once('close', r));
    // node itself needs ~100 ms to start; spread the kills over the whole run of bgmon-start
    await sleep(60 + Math.random() * 160);
    child.kill('SIGKILL');
    await closed;
  }
  await sleep(300); // a gated job whose starter died exits on its own
  const jobsDir = join(h.root, 'jobs');
  const records = new Map<string, any>();
  for (const f of listDir(jobsDir)) {
    // a start killed mid-write may leave its private temp file (never read as a record)
    if (f.startsWith('.')) assert.match(f, /^\.k\d+(@[0-9a-z]+-[0-9a-f]{8}\.(end|spare)|\.\d+\.\d+\.tmp)$/);
    if (!f.endsWith('.json') || f.startsWith('.')) continue;
    const rec = JSON.parse(readFileSync(join(jobsDir, f), 'utf8'));
    assert.is(schemaProblems(rec), null, f);
    records.set(rec.name, rec);
  }
  withRecord = records.size;
  const running = listPids().filter((p) => {
    const env = (() => { try { return readFileSync(`/proc/${p}/environ`, 'latin1'); } catch { return ''; } })();
    return env.includes(`BGMON_HOME=${h.root}\0`) && readFileSync(`/proc/${p}/cmdline`, 'latin1').startsWith('sleep') && readStat(p)?.state !== 'Z';
  });
  for (const pid of running) {
    const name = /BGMON_JOB=([^\0]+)/.exec(readFileSync(`/proc/${pid}/environ`, 'latin1'))![1];
    const rec = records.get(name);
    assert.ok(rec, `job process ${pid} (${name}) runs without a record`);
    assert.is(rec.pid, pid);
    assert.is(rec.status, 'RUNNING');
  }
  for (const rec of records.values()) {
    if (rec.status === 'RUNNING' && isAlive(rec.pid)) assert.ok(running.includes(rec.pid));
  }
  // the kernel released every lock with its holder: the names can be used again at once
  const again = await h.run('bgmon-start', ['--name', 'k0', '--', 'true']);
  assert.ok(again.code === 0 || (again.code === 1 && /RUNNING/.test(again.stderr)), again.stderr);
  console.log(`    (${withRecord} of 100 killed starts got as far as a record; ${running.length} jobs running)`);
}));

test('name locks: a live holder is waited for; a dead or abandoned one is broken', withHome(async (h) => {
  await h.start('seed', ['true']);
  const run = join(h.root, 'run');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  // held by a live process (this test runner): bgmon-start waits for it
  writeFileSync(join(run, 'held.lock'), `${process.pid} ${readStat(process.pid)!.starttime} ${boot}\n`, { mode: 0o600 });
  const waiting = h.run('bgmon-start', ['--name', 'held', '--', 'true']);
  await sleep(600);
  assert.not.ok(existsSync(join(h.root, 'jobs', 'held.json')), 'no record while the lock is held');
  unlinkSync(join(run, 'held.lock'));
  assert.is((await waiting).code, 0);
  // held by a process that no longer exists, or by one from another boot: broken at once
  writeFileSync(join(run, 'dead.lock'), `${2 ** 22 + 7} 12345 ${boot}\n`, { mode: 0o600 });
  writeFileSync(join(run, 'reboot.lock'), `${process.pid} ${readStat(process.pid)!.starttime} 00000000-0000-0000-0000-000000000000\n`, { mode: 0o600 });
  // created but never written (its writer died in between), long ago
  writeFileSync(join(run, 'empty.lock'), '', { mode: 0o600 });
  utimesSync(join(run, 'empty.lock'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
  for (const name of ['dead', 'reboot', 'empty']) {
    const r = await h.run('bgmon-start', ['--name', name, '--', 'true'], { timeoutMs: 10_000 });
    assert.is(r.code, 0, `${name}: ${r.stderr}`);
    assert.ok(r.ms < 5000, `${name} took ${r.ms} ms`);
  }
  assert.equal(listDir(run).filter((f) => f.endsWith('.lock')), [], 'every lock released');
}));

test.run();
