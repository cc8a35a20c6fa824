// Resource faults: the state's file system fills up; a job floods its log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { environHas, listPids } from 'bgmon-state';
import { eventually, isAlive, lines, withHome } from '../helpers';

function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

test('the file system holding the state fills up: the job\'s end is still recorded, status still works', withHome(async (h) => {
  const mnt = join(h.dir, 'small');
  mkdirSync(mnt);
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    console.log('    SKIP: cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN); the disk-full case was not run');
    return;
  }
  try {
    const env = { BGMON_HOME: join(mnt, 'home') };
    const start = await h.run('bgmon-start', ['--name', 'flood', '--', 'sh', '-c', 'head -c 2000000 /dev/zero | tr "\\0" x; echo; echo "exit of the writer: $?"; exit 4'], { env });
    assert.is(start.code, 0, start.stderr);
    const wait = await h.run('bgmon-wait', ['flood', '--timeout', '20s'], { env });
    assert.is(wait.code, 4, `the end is recorded despite ENOSPC: ${wait.stdout}${wait.stderr}`);
    const [rec] = lines(wait.stdout);
    assert.is(rec.status, 'FAILED');
    assert.is(rec.exit_code, 4);
    assert.ok(rec.ended_at);
    assert.is(JSON.parse(readFileSync(join(mnt, 'home', 'jobs', 'flood.json'), 'utf8')).status, 'FAILED', 'folded into the record on disk');
    assert.ok(statSync(rec.log).size < 2_000_000, `the writer hit a full disk (log: ${statSync(rec.log).size} bytes)`);
    const status = await h.run('bgmon-status', ['--json'], { env });
    assert.is(status.code, 0);
    assert.is(lines(status.stdout)[0].status, 'FAILED');
    const next = await h.run('bgmon-start', ['--name', 'next', '--', 'true'], { env });
    assert.ok(next.code === 1 || next.code === 0, 'a start on a full disk fails cleanly or succeeds');
    if (next.code === 1) assert.match(next.stderr, /^bgmon-start: .*(ENOSPC|no space)/i);
    assert.is(next.stderr.split('\n').filter(Boolean).length <= 1, true);
  } finally {
    await h.killHome(join(mnt, 'home'));
    execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
  }
}));

test('a job writing 1 GiB of output: bgmon\'s own processes stay under a few MB, no process copies the bytes', withHome(async (h) => {
  const rec = await h.start('gig', ['sh', '-c', 'head -c 1073741824 /dev/zero']);
  let peakKb = 0;
  const ours = () => listPids().filter((p) => environHas(p, `BGMON_HOME=${h.root}`) && !environHas(p, `BGMON_JOB_ID=${rec.id}`) || p === rec.sup_pid);
  const others: number[] = [];
  // sampled while the job runs; once it has ended the supervisor becomes a short Node process
  // that folds the end into the record
  await eventually(() => {
    for (const pid of ours()) {
      const kb = rssKb(pid);
      // read after the sample: a live job means its supervisor was still the shell
      if (!isAlive(rec.pid)) break;
      peakKb = Math.max(peakKb, kb);
      if (pid !== rec.sup_pid && !others.includes(pid)) others.push(pid);
    }
    return h.record('gig').status !== 'RUNNING';
  }, 60_000, 'the gigabyte to be written');
  assert.is(h.record('gig').status, 'SUCCEEDED');
  assert.is(statSync(rec.log).size, 1073741824, 'every byte in the log, written by the job itself');
  assert.ok(peakKb > 0 && peakKb < 4096, `supervisor peak RSS ${peakKb} kB`);
  assert.equal(others, [], 'no other bgmon process was alive while the job ran');
}));

test.run();
