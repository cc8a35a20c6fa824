// Faults around processes: the terminal dies, the supervisor dies, pids are reused, the machine
// reboots, a job turns zombie, a job resists being stopped. bgmon's state must stay true.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from 'bgmon-state';
import {
  binPath,
  deadRecord,
  ended,
  eventually,
  isAlive,
  jobProcs,
  lines,
  processes,
  sleep,
  staleRecord,
  until,
  untilGone,
  untilOnDisk,
  withHome,
} from '../helpers';

test(
  'the starting terminal disappears: a job started in a pty session survives SIGHUP and records its exit',
  withHome(async (h) => {
    // the job ends only when the test says so: no race with a slow machine
    const release = join(h.dir, 'release');
    const job = `until [ -e ${release} ]; do sleep 0.05; done; exit 5`;
    const inner = `"${process.execPath}" "${binPath('bgmon-start')}" --name pty -- sh -c '${job}'; sleep 1000`;
    const term = h.spawnOutside('script', ['-qec', inner, '/dev/null'], { detached: true });
    const rec = await untilOnDisk(h, 'pty', 'RUNNING');
    // the shell inside the pty: its own session, with the pty as controlling terminal
    const [shell] = processes((st) => st.ppid === term.pid && st.session === st.pid);
    assert.ok(shell, 'found the shell script(1) runs in the pty');
    assert.is.not(readStat(rec.pid)!.session, shell.session, 'the job is not in the terminal session');
    process.kill(-shell.session, 'SIGHUP');
    process.kill(term.pid!, 'SIGHUP');
    await untilGone([shell.pid, term.pid!], 'the terminal session');
    const after = await h.status('pty');
    assert.is(after.status, 'RUNNING', JSON.stringify(after));
    writeFileSync(release, '');
    const end = await until(h, 'pty', ended);
    assert.is(end.status, 'FAILED');
    assert.is(end.exit_code, 5);
  }),
);

test(
  'supervisor SIGKILLed while the job runs on: RUNNING while it lives, then DEAD, never a made-up exit code',
  withHome(async (h) => {
    // the job ends when the test says so, not after a sleep a loaded machine can outlast
    const release = join(h.dir, 'release-orphan');
    const rec = await h.start('orphan', ['sh', '-c', `until [ -e ${release} ]; do sleep 0.05; done; exit 3`]);
    process.kill(rec.sup_pid, 'SIGKILL');
    await untilGone([rec.sup_pid], 'the supervisor');
    assert.is((await h.status('orphan')).status, 'RUNNING');
    writeFileSync(release, '');
    const end = await until(h, 'orphan', ended);
    assert.is(end.status, 'DEAD');
    assert.is(end.exit_code, null);
    assert.is(end.signal, null);
    assert.is(h.record('orphan').status, 'RUNNING', 'the record is left as it was; the state is computed');
  }),
);

test(
  'job and supervisor SIGKILLed together: DEAD in the very next status call',
  withHome(async (h) => {
    const rec = await h.start('both', ['sleep', '1000']);
    process.kill(rec.sup_pid, 'SIGKILL');
    process.kill(-rec.pid, 'SIGKILL');
    await untilGone([rec.pid, rec.sup_pid], 'job and supervisor');
    const r = await h.run('bgmon-status', ['both', '--json']);
    assert.is(lines(r.stdout)[0].status, 'DEAD');
    const w = await h.run('bgmon-wait', ['both', '--timeout', '5s']);
    assert.is(w.code, 1);
  }),
);

test(
  'pid reuse: a record whose pid now belongs to an unrelated process is STALE; stop and rm --stop never signal it',
  withHome(async (h) => {
    const bystander = h.spawnOutside('sleep', ['1000']);
    await eventually(() => readStat(bystander.pid!));
    staleRecord(h, 'reused', bystander.pid!);
    assert.is((await h.status('reused')).status, 'STALE');
    const stop = await h.run('bgmon-stop', ['reused', '--signal', 'KILL', '--grace', '0']);
    assert.is(stop.code, 1);
    assert.match(stop.stderr, /STALE/);
    const rm = await h.run('bgmon-rm', ['reused', '--stop', '--grace', '0']);
    assert.is(rm.code, 0, 'a STALE record is terminal: removed, its pid untouched');
    await sleep(200);
    assert.ok(isAlive(bystander.pid!), 'the unrelated process was never signalled');
  }),
);

test(
  'reboot: a record from another boot is not RUNNING and its pid is never signalled',
  withHome(async (h) => {
    const bystander = h.spawnOutside('sleep', ['1000']);
    const st = await eventually(() => readStat(bystander.pid!));
    const otherBoot = '00000000-0000-0000-0000-000000000000';
    // same pid and starttime as a live process: only the boot id tells it is not the same one
    staleRecord(h, 'before-reboot', st.pid, { starttime: st.starttime, boot_id: otherBoot });
    deadRecord(h, 'gone-pid', { boot_id: otherBoot });
    assert.is((await h.status('before-reboot')).status, 'STALE');
    assert.is((await h.status('gone-pid')).status, 'DEAD');
    const stop = await h.run('bgmon-stop', ['before-reboot', 'gone-pid', '--signal', 'KILL', '--grace', '0']);
    assert.is(stop.code, 1);
    await sleep(200);
    assert.ok(isAlive(bystander.pid!));
  }),
);

test(
  'a zombie job (its parent does not reap it) is not RUNNING',
  withHome(async (h) => {
    const rec = await h.start('zombie', ['sleep', '1000']);
    process.kill(rec.sup_pid, 'SIGSTOP');
    try {
      process.kill(rec.pid, 'SIGKILL');
      await eventually(() => readStat(rec.pid)?.state === 'Z', 5000, 'the job to become a zombie');
      const s = await h.status('zombie');
      assert.is(s.status, 'FAILED');
      assert.is(s.signal, 'SIGKILL');
    } finally {
      process.kill(rec.sup_pid, 'SIGCONT');
    }
    const end = await untilOnDisk(h, 'zombie', ended);
    assert.is(end.signal, 'SIGKILL', 'the supervisor records what status already said');
  }),
);

test(
  'stop leaves nothing running: a job that ignores TERM, forks a tree, and has a child that called setsid',
  withHome(async (h) => {
    const script =
      'trap "" TERM; (sleep 1000 & sleep 1000 &); setsid sh -c \'trap "" TERM; sleep 1000 & wait\' & sleep 1000 & wait';
    const rec = await h.start('hydra', ['sh', '-c', script]);
    await eventually(() => jobProcs(rec).length >= 6, 5000, 'the tree to grow');
    const r = await h.run('bgmon-stop', ['hydra', '--grace', '1s']);
    assert.is(r.code, 0, r.stderr);
    assert.is(lines(r.stdout)[0].status, 'STOPPED');
    assert.equal(jobProcs(rec), [], 'nothing of the job is left');
    assert.ok(isAlive(process.pid));
  }),
);

test.run();
