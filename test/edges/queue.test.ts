import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { bootId, readStat } from 'bgmon-state';
import { join } from 'node:path';
import {
  eventually,
  fileMode,
  homeProcs,
  isAlive,
  lines,
  listDir,
  slowTest,
  until,
  untilGone,
  withHome,
  type TestHome,
} from '../helpers';

// Issue 9, items 4 (--after binds to a run), 14 (a queued job that cannot start) and 18 (deep chains).

const ranFile = (h: TestHome, what: string) => join(h.dir, `ran-${what}`);
const gate = (file: string) => ['sh', '-c', `while [ ! -e ${file} ]; do sleep 0.05; done`];
const leftQueue = (h: TestHome, name: string) =>
  eventually(() => h.record(name).status !== 'QUEUED' && h.record(name), 20_000, `${name} to leave the queue`);

/** Kills a job together with its supervisor, so nobody records its end: it is DEAD. */
async function killWithSupervisor(rec: any): Promise<void> {
  process.kill(rec.sup_pid, 'SIGKILL');
  await eventually(() => !isAlive(rec.sup_pid), 5000, 'the supervisor to die');
  process.kill(rec.pid, 'SIGKILL');
  await eventually(() => !isAlive(rec.pid), 5000, 'the job to die');
}

test(
  'after: a dependent waits for the run that was current, not for a rerun of the name',
  withHome(async (h) => {
    const a = await h.start('A', ['sleep', '1000']);
    const b = await h.start('B', ['touch', ranFile(h, 'B')], ['--after', 'A']);
    await killWithSupervisor(a);
    // A's run is DEAD; a rerun of A that succeeds must not let B run
    const a2 = await h.start('A', ['true']);
    assert.is.not(a2.id, a.id);
    const B = await leftQueue(h, 'B');
    assert.is(B.status, 'CANCELLED', 'the run B waited for died');
    assert.is(B.pid, null);
    assert.match(B.ended_at, /Z$/);
    assert.is(B.reason, `A@${a.id} ended DEAD`);
    await eventually(() => h.record('A').status === 'SUCCEEDED', 10_000, 'the rerun of A');
    assert.is((await h.status('B')).status, 'CANCELLED');
    assert.not.ok(existsSync(ranFile(h, 'B')), 'B never ran');
    assert.equal(b.after_ids, { A: a.id }, 'bound to the run of A');
    assert.equal(h.record('B').after_ids, { A: a.id });
    // the replaced run is kept in history/, private, beside its kept log
    const kept = join(h.root, 'history', `A@${a.id}.json`);
    const old = JSON.parse(readFileSync(kept, 'utf8'));
    assert.is(old.id, a.id);
    assert.is(old.status, 'DEAD');
    assert.is(old.log, join(h.root, 'logs', `A@${a.id}.log`));
    assert.ok(existsSync(old.log));
    assert.is(fileMode(kept), 0o600);
    assert.is(fileMode(join(h.root, 'history')), 0o700);
    assert.equal(listDir(join(h.root, 'history')), [`A@${a.id}.json`], 'no temp file left');
    const rm = await h.run('bgmon-rm', ['A']);
    assert.is(rm.code, 0, rm.stderr);
    assert.equal(listDir(join(h.root, 'history')), [], 'rm removes the history of the name');
    assert.equal(listDir(join(h.root, 'logs')), [], 'and its kept logs (B never ran: no log)');
  }),
);

/**
 * B waits for A and for G (held by a gate); A succeeds, then the name A is rerun with rerunCmd
 * while B still waits for G. Returns A's first record and G's gate.
 */
async function boundThenRerun(h: TestHome, rerunCmd: string[]): Promise<{ a: any; goG: string }> {
  const goA = join(h.dir, 'goA');
  const goG = join(h.dir, 'goG');
  const a = await h.start('A', gate(goA));
  await h.start('G', gate(goG));
  await h.start('B', ['touch', ranFile(h, 'B')], ['--after', 'A', '--after', 'G']);
  writeFileSync(goA, '');
  await eventually(() => h.record('A').status === 'SUCCEEDED', 10_000, 'A');
  await h.start('A', rerunCmd);
  return { a, goG };
}

test(
  'after: a dependent bound to a run that succeeded runs even if the name is rerun and fails',
  withHome(async (h) => {
    const { a, goG } = await boundThenRerun(h, ['false']);
    await eventually(() => h.record('A').status === 'FAILED', 10_000, 'the rerun of A to fail');
    assert.is((await h.status('B')).status, 'QUEUED', 'still waiting for G');
    writeFileSync(goG, '');
    const B = await leftQueue(h, 'B');
    assert.ok(B.status === 'RUNNING' || B.status === 'SUCCEEDED', `B runs: ${B.status}`);
    await eventually(() => existsSync(ranFile(h, 'B')), 10_000, 'B to run');
    assert.is(JSON.parse(readFileSync(join(h.root, 'history', `A@${a.id}.json`), 'utf8')).status, 'SUCCEEDED');
  }),
);

test(
  'after: rm keeps a finished predecessor while a job is queued after it',
  withHome(async (h) => {
    const goG = join(h.dir, 'goG');
    await h.start('A', ['true']);
    await h.start('X', ['true']);
    const ended = async (name: string) => (await h.status(name)).status === 'SUCCEEDED';
    await eventually(async () => (await ended('A')) && (await ended('X')), 10_000, 'A and X');
    await h.start('G', gate(goG));
    await h.start('B', ['touch', ranFile(h, 'B')], ['--after', 'A', '--after', 'G']);
    const fin = await h.run('bgmon-rm', ['--finished']);
    assert.is(fin.code, 0, '--finished skips it');
    assert.equal(
      lines(fin.stdout).map((r) => r.name),
      ['X'],
    );
    assert.is(fin.stderr, 'bgmon-rm: job A is kept: B queued after it\n');
    const named = await h.run('bgmon-rm', ['A']);
    assert.is(named.code, 1, 'named: refused, as a live job is');
    assert.is(named.stdout, '');
    assert.is(named.stderr, 'bgmon-rm: job A is kept: B queued after it\n');
    assert.is(h.record('A').status, 'SUCCEEDED');
    assert.is(h.record('B').status, 'QUEUED');
    writeFileSync(goG, '');
    await eventually(() => h.record('B').status === 'SUCCEEDED', 10_000, 'B to run once G ends');
    assert.ok(existsSync(ranFile(h, 'B')));
    // nobody waits any more: everything goes, history included
    const all = await h.run('bgmon-rm', ['--finished']);
    assert.is(all.code, 0, all.stderr);
    assert.equal(
      lines(all.stdout)
        .map((r) => r.name)
        .sort(),
      ['A', 'B', 'G'],
    );
    assert.equal(listDir(join(h.root, 'jobs')), []);
  }),
);

test(
  'after: removing a dead predecessor cancels its dependent on disk; a rerun of the name never revives it',
  withHome(async (h) => {
    const a = await h.start('A', ['sleep', '1000']);
    await h.start('B', ['touch', ranFile(h, 'B')], ['--after', 'A']);
    await killWithSupervisor(a);
    const rm = await h.run('bgmon-rm', ['A']);
    assert.is(rm.code, 0, rm.stderr);
    const B = h.record('B');
    assert.is(B.status, 'CANCELLED', 'written down by rm, not only computed by a later look');
    assert.match(B.ended_at, /Z$/);
    await h.start('A', ['true']);
    await eventually(() => h.record('A').status === 'SUCCEEDED', 10_000, 'the new A');
    assert.is((await h.status('B')).status, 'CANCELLED');
    assert.not.ok(existsSync(ranFile(h, 'B')), 'B never ran');
  }),
);

test(
  'after: a queued job removed by rm with its history is gone for its dependent, whatever runs under the name',
  withHome(async (h) => {
    // A rerun while B waits for the old run; then the old run's history file disappears
    const { a } = await boundThenRerun(h, ['true']);
    unlinkSync(join(h.root, 'history', `A@${a.id}.json`));
    assert.is((await h.status('B')).status, 'CANCELLED', 'the run B waited for is gone');
    const B = h.record('B');
    assert.is(B.status, 'CANCELLED');
    assert.is(B.reason, `A@${a.id} was removed`);
    assert.not.ok(existsSync(ranFile(h, 'B')));
  }),
);

test(
  'queue: a queued job that cannot start ends FAILED with the reason; the rest of the queue goes on',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const gone = join(h.dir, 'gone');
    const tools = join(h.dir, 'tools');
    mkdirSync(gone);
    mkdirSync(tools);
    for (const tool of ['deleted', 'unexecutable']) {
      writeFileSync(join(tools, tool), '#!/bin/sh\necho ran\n');
      chmodSync(join(tools, tool), 0o755);
    }
    await h.start('A', gate(go));
    await h.start('B', ['touch', ranFile(h, 'B')], ['--after', 'A', '--cwd', gone]);
    await h.start('C', ['touch', ranFile(h, 'C')], ['--after', 'A']);
    await h.start('D', ['./deleted'], ['--after', 'A', '--cwd', tools]);
    await h.start('E', [join(tools, 'unexecutable')], ['--after', 'A']);
    await h.start('F', ['touch', ranFile(h, 'F')], ['--after', 'B']);
    rmdirSync(gone);
    unlinkSync(join(tools, 'deleted'));
    chmodSync(join(tools, 'unexecutable'), 0o644);
    writeFileSync(go, '');
    await eventually(() => h.record('C').status === 'SUCCEEDED', 15_000, 'C to run');
    const s = await h.run('bgmon-status', ['--json']);
    assert.is(s.code, 0, s.stderr);
    assert.is(s.stderr, '');
    const byName = Object.fromEntries(lines(s.stdout).map((r) => [r.name, r]));
    assert.equal(Object.keys(byName).sort(), ['A', 'B', 'C', 'D', 'E', 'F']);
    const B = h.record('B');
    assert.is(B.status, 'FAILED');
    assert.is(B.exit_code, null, 'the command never ran: no exit code');
    assert.is(B.pid, null);
    assert.is(B.started_at, null);
    assert.match(B.ended_at, /Z$/);
    assert.is(B.reason, `could not start: working directory ${gone} is gone or not a directory`);
    assert.is(readFileSync(B.log, 'utf8'), `bgmon: ${B.reason}\n`);
    assert.is(byName.B.status, 'FAILED');
    assert.is(byName.F.status, 'CANCELLED', 'its dependent is cancelled');
    const unexecutable = `${join(tools, 'unexecutable')}: permission denied or not a file`;
    for (const [name, why] of [
      ['D', './deleted: no such file'],
      ['E', unexecutable],
    ]) {
      const r = h.record(name);
      assert.is(r.status, 'FAILED', name);
      assert.is(r.exit_code, 127, `${name}: 127, as bgmon-start reports a command it cannot run`);
      assert.is(r.reason, `could not start: ${why}`);
      assert.match(readFileSync(r.log, 'utf8'), `bgmon: could not start: ${why}\n`);
    }
    assert.is(byName.C.reason, null, 'reason is null when the exit status tells');
    assert.not.ok(existsSync(ranFile(h, 'B')) || existsSync(ranFile(h, 'F')));
    // C's record is folded before its supervisor's last pass removes its queue entry (and this
    // status had no queued job to advance): once bgmon's own processes are gone, none is left
    await eventually(() => homeProcs(h.root).length === 0, 30_000, "the supervisors' last passes to end");
    assert.equal(
      listDir(join(h.root, 'run')).filter((f) => f.endsWith('.queued')),
      [],
    );
    const w = await h.run('bgmon-wait', ['D']);
    assert.is(w.code, 127);
  }),
);

/** Writes c1..cN, each QUEUED after the one before, as bgmon-start leaves them (record + queue entry). */
function writeChain(h: TestHome, head: any, n: number): string[] {
  const ids = [head.id];
  const t0 = Date.parse(head.created_at);
  for (let k = 1; k <= n; k++) {
    const name = `c${k}`;
    const id = `chain-${k}`;
    ids.push(id);
    h.writeRecord(name, {
      ...head,
      name,
      id,
      status: 'QUEUED',
      cmd: ['touch', ranFile(h, name)],
      pid: null,
      created_at: new Date(t0 + k).toISOString(),
      started_at: null,
      ended_at: null,
      exit_code: null,
      signal: null,
      reason: null,
      log: join(h.root, 'logs', `${name}.log`),
      previous_log: null,
      after: [`c${k - 1}`],
      after_ids: { [`c${k - 1}`]: ids[k - 1] },
      boot_id: null,
      starttime: null,
      sup_pid: null,
      sup_starttime: null,
    });
    writeFileSync(join(h.root, 'run', `${name}.queued`), JSON.stringify({ id, env: h.env }), { mode: 0o600 });
  }
  return ids;
}

slowTest(
  'deep chain: 10,000 queued jobs are walked exactly, without overflowing the stack',
  withHome(async (h) => {
    const N = 10_000;
    const head = await h.start('c0', ['sleep', '1000']);
    writeChain(h, head, N);
    const queued = await h.run('bgmon-status', ['--json'], { timeoutMs: 120_000 });
    assert.is(queued.code, 0, queued.stderr);
    const before = lines(queued.stdout);
    assert.is(before.length, N + 1);
    assert.ok(
      before.slice(1).every((r) => r.status === 'QUEUED'),
      'all wait for c0, which runs',
    );
    const stop = await h.run('bgmon-stop', ['c0', '--grace', '5s']);
    assert.is(stop.code, 0, stop.stderr);
    const after = await h.run('bgmon-status', ['--json'], { timeoutMs: 120_000 });
    assert.is(after.code, 0, after.stderr);
    const records = lines(after.stdout);
    assert.is(records.length, N + 1);
    const notCancelled = records
      .filter((r) => r.name !== 'c0' && r.status !== 'CANCELLED')
      .map((r) => `${r.name} ${r.status}`);
    assert.equal(notCancelled.slice(0, 5), [], 'the whole chain is cancelled');
    for (const name of ['c1', `c${N / 2}`, `c${N}`]) {
      const r = h.record(name);
      assert.is(r.status, 'CANCELLED', `${name} on disk`);
      assert.match(r.ended_at, /Z$/);
    }
    assert.equal(
      listDir(join(h.root, 'run')).filter((f) => f.endsWith('.queued')),
      [],
    );
    const endCmd = ['--name', 'end', '--after', `c${N}`, '--', 'touch', ranFile(h, 'end')];
    const late = await h.run('bgmon-start', endCmd, { timeoutMs: 120_000 });
    assert.is(late.code, 0, late.stderr);
    assert.is(JSON.parse(late.stdout).status, 'CANCELLED');
    assert.not.ok(existsSync(ranFile(h, `c${N}`)) || existsSync(ranFile(h, 'end')));
  }),
);

slowTest(
  'deep chain: a cycle through 10,000 queued jobs is refused with its path',
  withHome(async (h) => {
    const N = 10_000;
    await h.start('Z', ['true']);
    await eventually(async () => (await h.status('Z')).status === 'SUCCEEDED', 10_000, 'Z');
    const head = await h.start('c0', ['sleep', '1000']);
    writeChain(h, head, N);
    const c1 = h.record('c1');
    h.writeRecord('c1', { ...c1, after: ['c0', 'Z'], after_ids: { c0: head.id, Z: h.record('Z').id } });
    const cyc = await h.run('bgmon-start', ['--name', 'Z', '--after', `c${N}`, '--', 'true'], { timeoutMs: 120_000 });
    assert.is(cyc.code, 2, cyc.stderr.slice(0, 300));
    const path = ['Z', ...Array.from({ length: N }, (_, i) => `c${N - i}`), 'Z'].join(' -> ');
    assert.is(cyc.stderr, `bgmon-start: --after ${path}: that is a cycle\n`);
    assert.is(h.record('Z').status, 'SUCCEEDED', 'Z keeps its record');
  }),
);

slowTest(
  'deep chain: a cycle in hand-made records stays QUEUED and does not hang a look',
  withHome(async (h) => {
    const head = await h.start('c0', ['sleep', '1000']);
    writeChain(h, head, 3000);
    // c1 also waits for c3000: a cycle no bgmon-start makes
    const c1 = h.record('c1');
    h.writeRecord('c1', { ...c1, after: ['c0', 'c3000'], after_ids: { c0: head.id, c3000: 'chain-3000' } });
    const s = await h.run('bgmon-status', ['c1', 'c3000', '--json'], { timeoutMs: 60_000 });
    assert.is(s.code, 0, s.stderr);
    assert.equal(
      lines(s.stdout).map((r) => r.status),
      ['QUEUED', 'QUEUED'],
    );
    await h.run('bgmon-stop', ['c0', '--grace', '5s']);
    const after = await h.run('bgmon-status', ['c1', 'c3000', '--json'], { timeoutMs: 60_000 });
    assert.is(after.code, 0, after.stderr);
    assert.equal(
      lines(after.stdout).map((r) => r.status),
      ['CANCELLED', 'CANCELLED'],
    );
  }),
);

test(
  'a supervisor does not wait in line for a queue lock a live process holds: it marks the queue, and the next ' +
    'reader starts what was queued',
  withHome(async (h) => {
    const release = join(h.dir, 'release');
    const a = await h.start('a', ['sh', '-c', `until [ -e ${release} ]; do sleep 0.05; done`], ['--queue', 'q']);
    // --retry: a run the queue's hand-off never starts (its end needs Node), so a's end goes through Node
    const b = await h.start('b', ['true'], ['--queue', 'q', '--retry', '1']);
    assert.equal([a.status, b.status], ['RUNNING', 'QUEUED']);
    // the queue's lock, held by a live process that is no bgmon command (as a slow advancer would)
    const holder = h.spawnOutside('sleep', ['1000']);
    await eventually(() => readStat(holder.pid!) !== null, 10_000, 'the holder');
    const lockPath = join(h.root, 'run', 'q@queue.lock');
    symlinkSync(`${holder.pid} ${readStat(holder.pid!)!.starttime} ${bootId()}`, lockPath);
    writeFileSync(release, '');
    // the supervisor's Node step folds a's end, finds the lock held, leaves the mark and exits
    // (it used to wait up to 8 s for the lock, then give up with the queue not advanced)
    await untilGone([a.sup_pid], "a's supervisor");
    assert.ok(existsSync(join(h.root, 'run', 'queues', 'q.dirty')), 'the queue is marked');
    assert.is(h.record('b').status, 'QUEUED', 'nothing started while the lock was held');
    unlinkSync(lockPath);
    process.kill(holder.pid!, 'SIGKILL');
    const done = await until(h, 'b', 'SUCCEEDED');
    assert.is(done.exit_code, 0);
    assert.not.ok(existsSync(join(h.root, 'run', 'queues', 'q.dirty')), 'the mark is cleared by the pass');
  }),
);

test.run();
