import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { bootId, readStat } from '../../packages/bgmon-state/src/proc';
import {
  countingDir,
  countingJob,
  endedOnDisk,
  eventually,
  gatedJob,
  homeProcs,
  isAlive,
  lines,
  NO_SUCH_PID,
  queueSpecs,
  ROOT,
  sleep,
  slowTest,
  until,
  untilGone,
  withHome,
  type TestHome,
} from '../helpers';

// Issue 11, Performance: the queue's hand-off. A plain queued job is started by the supervisor of
// the job that ended before it, with no Node process per job (supervisor.sh, handoff.ts).

const readLines = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
const runDir = (h: TestHome, queue: string, seq: number) => join(h.root, 'run', 'queues', `${queue}.runs`, String(seq));

function assertCounted(dir: string, names: string[], slots: number): void {
  const ran = readLines(join(dir, 'ran'));
  assert.equal([...ran].sort(), [...names].sort(), 'every job ran, once');
  const seen = readLines(join(dir, 'seen')).map(Number);
  assert.ok(Math.max(...seen) <= slots, `never more than ${slots} at once (saw ${Math.max(...seen)})`);
  assert.is(readFileSync(join(dir, 'cur'), 'utf8').trim(), '0');
}

/**
 * The run of `name` was started by the hand-off: by the supervisor of the run of `before`, which
 * ended before it, not by a Node launch (which gives every run a supervisor of its own). Its
 * record file is no proof: the pass that supervisor makes at its last end folds it.
 */
async function assertHandedOff(h: TestHome, before: string, name: string): Promise<void> {
  const [prev, rec] = [await h.status(before), await h.status(name)];
  assert.ok(prev.sup_pid > 1, `${before} has a supervisor`);
  assert.equal([rec.sup_pid, rec.sup_starttime], [prev.sup_pid, prev.sup_starttime], `${name} started by the hand-off`);
}

/** n counting jobs through a queue of `slots`, drained with nobody calling bgmon: no Node process per job. */
async function drainUnwatched(h: TestHome, n: number, slots: number, holdS: number): Promise<void> {
  const dir = countingDir(h);
  const names = Array.from({ length: n }, (_, i) => `j${i}`);
  const sub = await h.run('bgmon-start', ['--slots', String(slots), '-'], {
    input: queueSpecs(n, countingJob(dir, holdS)),
  });
  assert.is(sub.code, 0, sub.stderr);
  await eventually(() => names.every((name) => endedOnDisk(h, name)), 120_000, 'every job to end');
  assertCounted(dir, names, slots);
  // Once bgmon's own processes are gone, every record file says how its run ended: the pass made
  // at the queue's last end folded the runs the hand-off started, with no reader involved.
  await eventually(() => homeProcs(h.root).length === 0, 60_000, "the supervisors' last passes to end");
  assert.equal(
    names.filter((name) => h.record(name).status !== 'SUCCEEDED'),
    [],
    'every end folded into its record file',
  );
  const st = await h.run('bgmon-status', ['--json']);
  assert.is(st.code, 0, st.stderr);
  const recs = lines(st.stdout);
  assert.equal(
    recs.filter((r) => r.status !== 'SUCCEEDED' || r.exit_code !== 0).map((r) => [r.name, r.status]),
    [],
  );
  // Node starts the first `slots` runs, each with a supervisor of its own; every other run was
  // started by the supervisor of a run that ended before it (it names that supervisor)
  const supervisors = new Set(recs.map((r) => `${r.sup_pid} ${r.sup_starttime}`));
  assert.ok(supervisors.size <= 2 * slots, `${supervisors.size} supervisors ran ${n} jobs, at most ${2 * slots}`);
  // the record's pid is the job's own, leader of its own group and session
  const ids = new Map(readLines(join(dir, 'ids')).map((l) => [l.split(' ')[0], l.split(' ').slice(1)]));
  for (const r of recs) {
    const [pid, , , pgrp, session] = ids.get(r.name)!;
    assert.equal([r.pid, r.pid, r.pid], [Number(pid), Number(pgrp), Number(session)], `${r.name}: pid = pgid = sid`);
  }
}

test(
  'hand-off: 24 jobs in a queue of 4 run with no Node process per job, never more than 4, each once',
  withHome(async (h) => {
    await drainUnwatched(h, 24, 4, 0.05);
  }),
);

slowTest(
  'hand-off: 120 jobs in a queue of 4 run with no Node process per job, never more than 4, each once',
  withHome(async (h) => {
    await drainUnwatched(h, 120, 4, 0.02);
  }),
);

slowTest(
  'hand-off: a handed-off job gets its own environment, directory and umask, not its predecessor’s',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('a', gatedJob(gate), ['--queue', 'e', '--env', 'ONLY_A=1']);
    const sub = join(h.dir, 'sub');
    mkdirSync(sub);
    const out = join(h.dir, 'out');
    const cmd = ['sh', '-c', `{ env; echo "cwd=$PWD"; echo "umask=$(umask)"; } > ${out}`];
    const flags = ['--name', 'b', '--queue', 'e', '--cwd', sub, '--env', 'ONLY_B=it is b'];
    const b = await h.run('bgmon-start', [...flags, '--', ...cmd], { env: { ONLY_SUBMITTER_B: 'x' } });
    assert.is(b.code, 0, b.stderr);
    assert.is(lines(b.stdout)[0].status, 'QUEUED');
    writeFileSync(gate, '');
    await eventually(() => endedOnDisk(h, 'b'), 20_000, 'b to end');
    await assertHandedOff(h, 'a', 'b');
    const seen = readLines(out);
    assert.ok(seen.includes('ONLY_B=it is b'), 'its --env');
    assert.ok(seen.includes('ONLY_SUBMITTER_B=x'), "its submitter's environment");
    assert.ok(seen.includes('BGMON_JOB=b'), 'its BGMON_JOB');
    assert.ok(seen.includes(`BGMON_JOB_ID=${lines(b.stdout)[0].id}`), 'its BGMON_JOB_ID');
    assert.not.ok(
      seen.some((l) => l.startsWith('ONLY_A=')),
      "nothing of a's environment",
    );
    assert.ok(seen.includes(`cwd=${sub}`), 'its --cwd');
    assert.ok(seen.includes(`umask=${process.umask().toString(8).padStart(4, '0')}`), "its submitter's umask");
  }),
);

/** The job's shell of a handed-off run, as the supervisor runs it (supervisor.sh, hand_sh). */
function handSh(): string {
  const text = readFileSync(join(ROOT, 'packages', 'bgmon-state', 'src', 'supervisor.sh'), 'utf8');
  const m = /^hand_sh='\n([\s\S]*?)\n'$/m.exec(text);
  assert.ok(m, 'supervisor.sh defines hand_sh');
  return m![1];
}

/**
 * What a supervisor that claimed a run does late (a slow or stopped one): runs that run's job
 * shell on its run directory. Returns its exit status and whether the command ran.
 */
function lateJobShell(h: TestHome, dir: string, rec: any): { status: number | null; ran: boolean } {
  const marker = join(h.dir, `late-${rec.name}`);
  const out = join(h.dir, `late-${rec.name}.out`);
  const log = join(h.root, 'logs', `${rec.name}.log`);
  const end = join(h.root, 'jobs', `.${rec.name}@${rec.id}.end`);
  const r = spawnSync(
    '/bin/sh',
    [
      '-c',
      // as the real chain: env -i puts the job's environment (its marker) first, then its shell
      `exec 4>>"$0"; exec /usr/bin/env -i BGMON_JOB_ID="$6" /bin/sh -c "$1" bgmon-job "$2" "1 1" 0022 "$3" "$4" \
        /usr/bin/mv /bin/sh -c "echo ran > $5"`,
      out,
      handSh(),
      dir,
      log,
      end,
      marker,
      rec.id,
    ],
    { timeout: 10_000 },
  );
  return { status: r.status, ran: existsSync(marker) };
}

/** A process of ours that stands for a live supervisor: its pid and starttime. */
function liveClaimer(h: TestHome): { pid: number; starttime: number } {
  const child = h.spawnOutside('sleep', ['1000']);
  const st = readStat(child.pid!);
  assert.ok(st, 'the stand-in is alive');
  return { pid: child.pid!, starttime: st!.starttime };
}

slowTest(
  'hand-off: bgmon-stop of a run a live supervisor claimed but has not started: STOPPED, and it can never start',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'k']);
    const next = await h.start('next', ['true'], ['--queue', 'k']);
    assert.is(next.status, 'QUEUED');
    const dir = runDir(h, 'k', next.queue_seq);
    const c = liveClaimer(h);
    writeFileSync(join(dir, 'claim'), `1 ${c.pid} ${c.starttime} ${bootId()}\n`, { flag: 'wx', mode: 0o600 });
    const stop = await h.run('bgmon-stop', ['next']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].status, 'STOPPED');
    // the late claimer's job shell finds the decision made: it exits 125 and the command never runs
    assert.equal(lateJobShell(h, dir, next), { status: 125, ran: false });
    // nor once the queue has moved on and the run's directory is pruned
    writeFileSync(gate, '');
    const after = await h.start('after', ['true'], ['--queue', 'k']);
    await until(h, 'after', 'SUCCEEDED', 20_000);
    await h.run('bgmon-start', ['--name', 'last', '--queue', 'k', '--', 'true']);
    assert.not.ok(existsSync(dir), 'the run directory is pruned once the queue has passed it');
    assert.equal(lateJobShell(h, dir, next), { status: 125, ran: false });
    assert.is((await h.status('next')).status, 'STOPPED');
    assert.ok(after.queue_seq > next.queue_seq);
  }),
);

slowTest(
  'hand-off: Node starting a run a live supervisor claimed first voids the claim: the late job shell never runs it',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'n', '--slots', '3']);
    const next = await h.start('next', gatedJob(gate), ['--queue', 'n']);
    assert.is(next.status, 'RUNNING', 'a free slot: Node started it at once');
    // the same, with a claim made first by a (live, slow) supervisor: Node must not start it too
    const late = await h.run('bgmon-start', ['--name', 'late', '--queue', 'n', '--slots', '1', '--', 'true']);
    assert.is(lines(late.stdout)[0].status, 'QUEUED');
    const third = lines(late.stdout)[0];
    const rdir = runDir(h, 'n', third.queue_seq);
    const c = liveClaimer(h);
    writeFileSync(join(rdir, 'claim'), `2 ${c.pid} ${c.starttime} ${bootId()}\n`, { flag: 'wx', mode: 0o600 });
    // room for it again: the reader's pass starts it itself, once sure the claimer never will
    const more = await h.run('bgmon-start', ['--name', 'more', '--queue', 'n', '--slots', '5', '--', 'true']);
    assert.is(more.code, 0, more.stderr);
    const w = await h.run('bgmon-wait', ['late', 'more', '--timeout', '20s']);
    assert.is(w.code, 0, w.stdout + w.stderr);
    assert.equal(readFileSync(join(rdir, 'start'), 'utf8'), 'none\n', 'the claim was voided first');
    assert.equal(lateJobShell(h, rdir, third), { status: 125, ran: false });
    writeFileSync(gate, '');
  }),
);

slowTest(
  'hand-off: a job shell never acts on a run directory that is not its own run’s (a SEQ reused after a lost queue file)',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'u']);
    const next = await h.start('next', ['sh', '-c', 'echo next'], ['--queue', 'u']);
    const dir = runDir(h, 'u', next.queue_seq);
    // a late job of an earlier run that had the same SEQ, with that run's id
    assert.equal(lateJobShell(h, dir, { ...next, name: 'old', id: 'mx00000-00000000' }), { status: 125, ran: false });
    assert.not.ok(existsSync(join(dir, 'start')), 'no start written into the other run’s directory');
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', ['next', '--timeout', '20s']);
    assert.is(w.code, 0, w.stdout + w.stderr);
    assert.is(readFileSync(join(h.root, 'logs', 'next.log'), 'utf8'), 'next\n');
  }),
);

slowTest(
  'hand-off: a dead supervisor’s claim is voided before Node starts the run itself: it runs once, never twice',
  withHome(async (h) => {
    const dir = countingDir(h);
    const gate = join(h.dir, 'gate');
    const first = await h.start('first', gatedJob(gate), ['--queue', 'k']);
    assert.is(first.status, 'RUNNING');
    const next = await h.start('next', countingJob(dir, 0), ['--queue', 'k']);
    const rdir = runDir(h, 'k', next.queue_seq);
    // what a supervisor leaves when killed right after claiming `next`: its claim, no start
    writeFileSync(join(rdir, 'claim'), `1 ${NO_SUCH_PID} 1 ${bootId()}\n`, { flag: 'wx', mode: 0o600 });
    const st = await h.run('bgmon-status', ['next', '--json']);
    assert.is(st.code, 0, st.stderr);
    assert.is(lines(st.stdout)[0].status, 'QUEUED', 'the slot is still first’s');
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', ['next', '--timeout', '30s']);
    assert.is(w.code, 0, w.stdout + w.stderr);
    assert.equal(readLines(join(dir, 'ran')), ['next']);
    // the dead claimer's job shell, had it survived, can no longer start it
    if (existsSync(rdir)) assert.equal(lateJobShell(h, rdir, next), { status: 125, ran: false });
    await sleep(200);
    assert.equal(readLines(join(dir, 'ran')), ['next'], 'it ran once');
  }),
);

slowTest(
  'hand-off: a run voided before its job could start gets no end from its taker; Node starts it, in FIFO order',
  withHome(async (h) => {
    const dir = countingDir(h);
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'v']);
    const next = await h.start('next', countingJob(dir, 0), ['--queue', 'v']);
    await h.start('third', countingJob(dir, 0), ['--queue', 'v']);
    // what a stopper (or Node starting the run itself) leaves when a supervisor claimed it first
    writeFileSync(join(runDir(h, 'v', next.queue_seq), 'start'), 'none\n', { mode: 0o600 });
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', ['next', 'third', '--timeout', '30s']);
    assert.is(w.code, 0, w.stdout + w.stderr);
    assert.equal(
      lines(w.stdout).map((r) => [r.name, r.status, r.exit_code]),
      [
        ['next', 'SUCCEEDED', 0],
        ['third', 'SUCCEEDED', 0],
      ],
    );
    assert.equal(readLines(join(dir, 'ran')), ['next', 'third'], 'each ran once, first in first out');
  }),
);

/** Every file and directory under `root` with its mode, and what is neither (links, FIFOs). */
function modes(root: string): string[] {
  const bad: string[] = [];
  const walk = (path: string) => {
    const st = lstatSync(path);
    if (st.isDirectory()) {
      if ((st.mode & 0o777) !== 0o700) bad.push(`${path} ${(st.mode & 0o777).toString(8)}`);
      for (const f of readdirSync(path)) walk(join(path, f));
    } else if (!st.isFile()) bad.push(`${path}: not a plain file`);
    else if ((st.mode & 0o777) !== 0o600) bad.push(`${path} ${(st.mode & 0o777).toString(8)}`);
  };
  walk(root);
  return bad;
}

test(
  'hand-off: every file the hand-off makes (claim, start, log, end) is 0600, every directory 0700, whatever the umask',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    const cmd = gatedJob(gate, 'echo out');
    // a permissive umask for the submitter, and so for the jobs: the home stays private anyway
    const start = (name: string) =>
      h.run('/bin/sh', ['-c', `umask 000; exec "$0" "$@"`, process.execPath, ...startArgs(name, cmd)]);
    for (const name of ['a', 'b', 'c']) assert.is((await start(name)).code, 0);
    assert.equal(modes(h.root), [], 'queued');
    writeFileSync(gate, '');
    await eventually(() => endedOnDisk(h, 'c'), 20_000, 'c to end');
    await assertHandedOff(h, 'b', 'c');
    assert.equal(modes(h.root), [], 'handed off');
    assert.is(readFileSync(join(h.root, 'logs', 'c.log'), 'utf8'), 'out\n');
  }),
);

const startArgs = (name: string, cmd: string[]) => [
  join(ROOT, 'packages', 'bgmon-start', 'bin', 'bgmon-start'),
  '--name',
  name,
  '--queue',
  'm',
  '--',
  ...cmd,
];

/**
 * Plants, at a queued run's log and end file paths, `kind` pointing at a file of the user's
 * outside the home; the hand-off then runs the job. The file is never written, nothing hangs.
 */
async function plantedAtPaths(h: TestHome, kind: 'symlink' | 'hardlink' | 'fifo'): Promise<void> {
  const gate = join(h.dir, 'gate');
  await h.start('first', gatedJob(gate), ['--queue', 'p']);
  const b = await h.start('b', ['sh', '-c', 'echo written by b'], ['--queue', 'p']);
  assert.is(b.status, 'QUEUED');
  const paths = [join(h.root, 'logs', 'b.log'), join(h.root, 'jobs', `.b@${b.id}.end`)];
  const victims = paths.map((_, i) => join(h.dir, `victim${i}`));
  for (const [i, path] of paths.entries()) {
    writeFileSync(victims[i], 'precious\n');
    if (existsSync(path)) unlinkSync(path);
    if (kind === 'symlink') symlinkSync(victims[i], path);
    else if (kind === 'hardlink') linkSync(victims[i], path);
    else assert.is(spawnSync('mkfifo', ['-m', '600', path]).status, 0);
  }
  writeFileSync(gate, '');
  const w = await h.run('bgmon-wait', ['b', '--timeout', '30s']);
  assert.is(w.code, 0, w.stdout + w.stderr);
  for (const victim of victims) assert.is(readFileSync(victim, 'utf8'), 'precious\n', `${victim} untouched`);
  assert.is(readFileSync(paths[0], 'utf8'), 'written by b\n', "b's own log, in place of what was planted");
  assert.ok(lstatSync(paths[0]).isFile() && statSync(paths[0]).nlink === 1);
}

test(
  'hand-off: a symlink planted at a queued run’s log and end file is replaced, never written through',
  withHome(async (h) => {
    await plantedAtPaths(h, 'symlink');
  }),
);

slowTest(
  'hand-off: a hard link planted at a queued run’s log and end file is replaced, never written through',
  withHome(async (h) => {
    await plantedAtPaths(h, 'hardlink');
  }),
);

slowTest(
  'hand-off: a FIFO planted at a queued run’s log and end file hangs nothing',
  withHome(async (h) => {
    await plantedAtPaths(h, 'fifo');
  }),
);

/** bgmon-status --follow's lines until `stop` resolves. */
async function followLines(h: TestHome, name: string, until: Promise<unknown>): Promise<any[]> {
  const follow = h.run('bgmon-status', ['--follow', '--until-done', name], { timeoutMs: 60_000 });
  await until;
  const r = await follow;
  return lines(r.stdout);
}

test(
  'hand-off: every reader sees a handed-off run as it is, though its record file says QUEUED until folded',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    const hold = join(h.dir, 'hold');
    await h.start('first', gatedJob(gate), ['--queue', 'r']);
    const b = await h.start(
      'b',
      ['sh', '-c', `echo b-out; while [ ! -e ${hold} ]; do sleep 0.02; done; exit 3`],
      ['--queue', 'r'],
    );
    writeFileSync(gate, '');
    const running = await until(h, 'b', 'RUNNING', 20_000);
    assert.is(h.record('b').status, 'QUEUED', 'started by the hand-off');
    assert.ok(isAlive(running.pid) && running.sup_pid !== null);
    const st = readStat(running.pid)!;
    assert.equal([st.pgrp, st.session, st.starttime], [running.pid, running.pid, running.starttime]);
    const w = await h.run('bgmon-wait', ['b', '--timeout', '300ms']);
    assert.is(w.code, 124, 'wait: not ended');
    const rm = await h.run('bgmon-rm', ['b']);
    assert.is(rm.code, 1, 'rm refuses a running job');
    const tail = await eventually(
      async () => {
        const t = await h.run('bgmon-tail', ['b']);
        return t.stdout === 'b-out\n' && t;
      },
      10_000,
      'tail to show its output',
    );
    assert.is(tail.code, 0);
    const followed = followLines(
      h,
      'b',
      sleep(300).then(() => writeFileSync(hold, '')),
    );
    const events = await followed;
    assert.equal(events.at(-1).status, 'FAILED');
    assert.equal(events.at(-1).exit_code, 3);
    assert.ok(
      events.every((e) => e.status !== 'QUEUED'),
      'follow never shows it QUEUED again',
    );
    const waited = await h.run('bgmon-wait', ['b']);
    assert.is(waited.code, 3);
    assert.is(h.record('b').status, 'FAILED', 'folded');
    // a rerun keeps the run in history with its true outcome
    await h.start('b', ['true'], ['--queue', 'r']);
    const hist = await h.run('bgmon-status', ['--history', 'b', '--json']);
    assert.equal(
      lines(hist.stdout).map((r) => [r.id === b.id, r.status]),
      [
        [true, 'FAILED'],
        [false, lines(hist.stdout)[1].status],
      ],
    );
  }),
);

test(
  'hand-off: bgmon-stop of a handed-off running job stops it (STOPPED), and nothing of the queue runs it again',
  withHome(async (h) => {
    const dir = countingDir(h);
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 's']);
    const [sh, c, script] = countingJob(dir, 30);
    await h.start('b', [sh, c, script], ['--queue', 's']);
    writeFileSync(gate, '');
    const running = await until(
      h,
      'b',
      (s) => s.status === 'RUNNING' && readLines(join(dir, 'ran')).includes('b'),
      20_000,
    );
    const stop = await h.run('bgmon-stop', ['b', '--grace', '2s']);
    assert.is(stop.code, 0, stop.stderr);
    assert.is(lines(stop.stdout)[0].status, 'STOPPED');
    await untilGone([running.pid], 'b');
    await h.run('bgmon-status', ['--json']);
    await sleep(300);
    assert.equal(readLines(join(dir, 'ran')), ['b'], 'it ran once');
    assert.is((await h.status('b')).status, 'STOPPED');
  }),
);

/**
 * Rounds of stops racing the hand-off: jobs of 0.05-0.15 s (by round) through a queue of 2, held
 * at a gate after their first line, and one bgmon-stop (or bgmon-rm --stop) per job of a window
 * that moves with the round, all at once. Even rounds open the gate at once, so the stops meet
 * jobs queued, being taken, running and ended; odd rounds open it once the stops have returned, so
 * stops surely meet queued jobs. Each job ran at most once; one that ran says it started; one that
 * never started is STOPPED and never runs; one that started without running its first line was
 * stopped in between (STOPPED).
 */
async function stopRace(h: TestHome, round: number, rm: boolean): Promise<number> {
  const dir = join(h.dir, `r${round}`);
  mkdirSync(dir);
  const n = 12;
  const hold = (0.05 + 0.05 * (round % 3)).toFixed(2);
  const gate = join(dir, 'gate');
  const names = Array.from({ length: n }, (_, i) => `r${round}x${i}`);
  const job = (name: string) => [
    'sh',
    '-c',
    `echo ${name} >> ${dir}/ran; while [ ! -e ${gate} ]; do sleep 0.02; done; sleep ${hold}`,
  ];
  const input = names.map((name) => JSON.stringify({ name, cmd: job(name), queue: `r${round}` })).join('\n') + '\n';
  const sub = await h.run('bgmon-start', ['--slots', '2', '-'], { input });
  assert.is(sub.code, 0, sub.stderr);
  const targets = names.slice(1 + (round % 4), 8 + (round % 4));
  if (round % 2 === 0) writeFileSync(gate, '');
  const stops = await Promise.all(
    targets.map((name) => h.run(rm ? 'bgmon-rm' : 'bgmon-stop', [...(rm ? ['--stop'] : []), '--grace', '2s', name])),
  );
  writeFileSync(gate, '');
  for (const stop of stops) assert.is(stop.code, 0, stop.stdout + stop.stderr);
  const w = await h.run(
    'bgmon-wait',
    names.filter((x) => !rm || !targets.includes(x)),
    { timeoutMs: 60_000 },
  );
  assert.ok(w.code === 0 || w.code === 1, w.stderr);
  await h.run('bgmon-status', ['--json']);
  const ran = readLines(join(dir, 'ran'));
  assert.is(new Set(ran).size, ran.length, `round ${round}: none ran twice: ${ran}`);
  let never = 0;
  for (const name of names) {
    if (rm && targets.includes(name)) {
      assert.not.ok(existsSync(join(h.root, 'jobs', `${name}.json`)), `${name} removed`);
      never += ran.includes(name) ? 0 : 1;
      continue;
    }
    const rec = (await h.status(name)) as any;
    const started = rec.started_at !== null && rec.pid !== null;
    if (ran.includes(name)) assert.ok(started, `round ${round}: ${name} ran, and its record says it started`);
    else assert.is(rec.status, 'STOPPED', `round ${round}: ${name} did not run: STOPPED (${JSON.stringify(rec)})`);
    never += started ? 0 : 1;
  }
  // a job stopped or removed before it ran never runs later either
  await sleep(300);
  assert.equal(readLines(join(dir, 'ran')), ran, 'nothing ran after the stops returned and the queue drained');
  return never;
}

/** Runs the rounds; across them, some stops must have met queued jobs (else nothing raced). */
async function stopRaces(h: TestHome, rounds: number, rm: boolean): Promise<void> {
  let never = 0;
  for (let round = 0; round < rounds; round++) never += await stopRace(h, round, rm);
  assert.ok(never > 0, 'some stops came before their jobs ran');
}

slowTest(
  'hand-off: bgmon-stop of queued jobs racing the hand-off, 4 rounds: each ran once or never, as its record says',
  withHome(async (h) => {
    await stopRaces(h, 4, false);
  }),
);

slowTest(
  'hand-off: bgmon-rm --stop of queued jobs racing the hand-off, 3 rounds: none runs twice or after removal',
  withHome(async (h) => {
    await stopRaces(h, 3, true);
  }),
);

slowTest(
  'hand-off: --slots lowered while the queue drains: once the running jobs end, never more than the new limit',
  withHome(async (h) => {
    const dir = countingDir(h);
    const n = 12;
    const gate = join(h.dir, 'gate');
    const [sh, c, script] = countingJob(dir, 0.3);
    const cmd = [sh, c, `while [ ! -e ${gate} ]; do sleep 0.05; done; ${script}`];
    const sub = await h.run('bgmon-start', ['--slots', '4', '-'], { input: queueSpecs(n, cmd) });
    assert.is(sub.code, 0, sub.stderr);
    const first = ['j0', 'j1', 'j2', 'j3'];
    assert.equal(
      lines(sub.stdout).map((r) => r.status),
      [...first.map(() => 'RUNNING'), ...Array.from({ length: n - 4 }, () => 'QUEUED')],
    );
    // lowered while four run (held at the gate): the supervisors of slots 2 to 4 hand nothing on
    const lower = await h.run('bgmon-start', ['--name', 'low', '--queue', 'q', '--slots', '1', '--', 'true']);
    assert.is(lower.code, 0, lower.stderr);
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', first, { timeoutMs: 60_000 });
    assert.is(w.code, 0, w.stderr);
    const cur = () => Number(readFileSync(join(dir, 'cur'), 'utf8').trim());
    await eventually(() => cur() <= 1, 30_000, 'at most one job to run');
    const from = readLines(join(dir, 'seen')).length;
    const all = await h.run('bgmon-wait', ['j*', 'low'], { timeoutMs: 120_000 });
    assert.is(all.code, 0, all.stderr);
    const later = readLines(join(dir, 'seen')).slice(from).map(Number);
    assert.ok(later.length > 0, 'jobs started after the four first ones ended');
    assert.ok(Math.max(...later) <= 1, `at most 1 at once after lowering (saw ${later})`);
    assertCounted(
      dir,
      Array.from({ length: n }, (_, i) => `j${i}`),
      4,
    );
  }),
);

slowTest(
  'hand-off: a job queued --after a handed-off run starts when that run ends, not when the chain ends',
  withHome(async (h) => {
    const gate = join(h.dir, 'gate');
    await h.start('first', gatedJob(gate), ['--queue', 'w']);
    await h.start('b', ['true'], ['--queue', 'w']);
    await h.start('c', ['sleep', '30'], ['--queue', 'w']);
    const d = await h.start('d', ['true'], ['--after', 'b']);
    assert.is(d.status, 'QUEUED');
    writeFileSync(gate, '');
    const w = await h.run('bgmon-wait', ['d', '--timeout', '20s']);
    assert.is(w.code, 0, w.stdout + w.stderr);
    assert.is((await h.status('c')).status, 'RUNNING', 'd did not wait for the chain (c runs 30 s)');
  }),
);

test.run();
