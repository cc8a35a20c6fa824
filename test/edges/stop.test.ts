// bgmon-stop at the edges: concurrent stops, interrupted stops, EPERM, forged records, a full disk.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat, wasStopped, type Home } from 'bgmon-state';
import {
  binPath,
  ended,
  eventually,
  forgeRecord,
  groupMembers,
  isAlive,
  lines,
  listDir,
  schemaProblems,
  sleep,
  slowTest,
  spawnCollect,
  tmpfsUnavailable,
  until,
  untilOnDisk,
  withHome,
  withForeignJob,
  withSmallDisk,
  type TestHome,
} from '../helpers';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const TERM_TRAPPER = 'trap "exit 3" TERM; while :; do sleep 0.1; done';

/** Files in run/ that record a stop of `name`: NAME.stop and NAME@ID.* markers. */
const stopMarkers = (h: TestHome, name: string) =>
  listDir(join(h.root, 'run')).filter((f) => f === `${name}.stop` || f.startsWith(`${name}@`));
const homeOf = (h: TestHome): Home => ({
  root: h.root,
  jobs: join(h.root, 'jobs'),
  logs: join(h.root, 'logs'),
  run: join(h.root, 'run'),
});

slowTest(
  'item 3: 20 concurrent stops of TERM-trapping jobs: every record valid, STOPPED, exit 3, no temp files',
  withHome(async (h) => {
    const names = Array.from({ length: 20 }, (_, i) => `trap${i}`);
    for (let i = 0; i < names.length; i += 5)
      await Promise.all(names.slice(i, i + 5).map((n) => h.start(n, ['sh', '-c', TERM_TRAPPER])));
    const results = await Promise.all(
      names.map((n) => h.run('bgmon-stop', [n, '--grace', '20s'], { timeoutMs: 60_000 })),
    );
    results.forEach((r, i) => {
      assert.is(r.code, 0, `${names[i]}: ${r.stderr}`);
      assert.is(r.stderr, '');
      const [out] = lines(r.stdout);
      assert.is(out.status, 'STOPPED', r.stdout);
      assert.is(out.exit_code, 3, r.stdout);
      assert.is(out.signal, null, r.stdout);
      assert.match(out.ended_at, ISO);
    });
    for (const n of names) {
      const rec = await untilOnDisk(h, n, ended);
      assert.is(schemaProblems(rec), null, JSON.stringify(rec));
      assert.is(rec.status, 'STOPPED', JSON.stringify(rec));
      assert.is(rec.exit_code, 3);
      assert.match(rec.ended_at, ISO);
    }
    await sleep(300); // a supervisor whose helper was killed would leave its temp file now
    assert.equal(
      listDir(join(h.root, 'jobs')).filter((f) => !f.endsWith('.json') || f.startsWith('.')),
      [],
    );
    for (const n of names) assert.equal(stopMarkers(h, n), [], `${n}: markers cleared once the end is recorded`);
  }),
);

/** Starts bgmon-stop in the background so the test can signal it during the grace period. */
const backgroundStop = (h: TestHome, name: string, grace = '60s') =>
  spawnCollect(
    process.execPath,
    [binPath('bgmon-stop'), name, '--grace', grace],
    { env: h.env },
    { timeoutMs: 120_000 },
  );

// Ignores TERM, then exits 0 on its own once the file "go" exists in its cwd.
const TERM_IGNORER = 'trap "" TERM; while [ ! -e go ]; do sleep 0.05; done; exit 0';

test(
  'item 8: Ctrl-C, TERM or HUP on bgmon-stop in its grace period leaves no stop: the later exit 0 is SUCCEEDED',
  withHome(async (h) => {
    const cases = [
      ['SIGINT', 130],
      ['SIGTERM', 143],
      ['SIGHUP', 129],
    ] as const;
    await Promise.all(
      cases.map(async ([sig, code], i) => {
        const name = `ignorer${i}`;
        const cwd = join(h.dir, name);
        mkdirSync(cwd);
        const rec = await h.start(name, ['sh', '-c', TERM_IGNORER], ['--cwd', cwd]);
        const stop = backgroundStop(h, name);
        try {
          await eventually(() => stopMarkers(h, name).length > 0, 10_000, `${name}: the stop to begin`);
          await sleep(200);
          stop.child.kill(sig);
          const r = await stop.done;
          assert.is(r.code, code, `${sig}: ${r.stderr}`);
          assert.is(r.stdout, '');
          assert.match(
            r.stderr,
            new RegExp(`^bgmon-stop: interrupted by ${sig}; not stopped, and no stop recorded: ${name}\\n$`),
          );
          assert.equal(stopMarkers(h, name), [], `${sig}: nothing left that labels the later end`);
          assert.ok(isAlive(rec.pid), 'the job ignores TERM and runs on');
          writeFileSync(join(cwd, 'go'), '');
          const end = await until(h, name, ended);
          assert.is(end.status, 'SUCCEEDED', `${sig}: ${JSON.stringify(end)}`);
          assert.is(end.exit_code, 0);
        } finally {
          if (stop.child.exitCode === null) stop.child.kill('SIGKILL');
        }
      }),
    );
  }),
);

test(
  'item 8: a stop killed with SIGKILL counts only while it lived; a confirmed stop counts for good',
  withHome(async (h) => {
    const rec = await h.start('orphaned', ['sh', '-c', TERM_IGNORER]);
    const stop = backgroundStop(h, 'orphaned');
    await eventually(() => stopMarkers(h, 'orphaned').length > 0, 10_000, 'the stop to begin');
    await sleep(100);
    assert.ok(wasStopped(homeOf(h), rec), 'while the stopper is at work its marker counts');
    stop.child.kill('SIGKILL');
    await stop.done;
    assert.not.ok(wasStopped(homeOf(h), rec), 'a dead stopper that never saw the end labels nothing');
    assert.not.ok(wasStopped(homeOf(h), { ...rec, id: `${rec.id}x` }), 'another run of the name is not stopped');
    // a second, uninterrupted stop ends it (SIGKILL after the grace) and its confirmation is kept until recorded
    const r = await h.run('bgmon-stop', ['orphaned', '--grace', '300ms']);
    assert.is(r.code, 0, r.stderr);
    assert.is(lines(r.stdout)[0].status, 'STOPPED');
    assert.is(lines(r.stdout)[0].signal, 'SIGKILL');
    assert.equal(groupMembers(rec.pid), []);
  }),
);

/** A record that says RUNNING for a process the test chose (a hand-written, forged record). */
const forge = (h: TestHome, name: string, fields: Record<string, unknown>) => forgeRecord(h, name, fields);

async function assertRefused(h: TestHome, name: string, pattern: RegExp): Promise<void> {
  const r = await h.run('bgmon-stop', [name, '--grace', '0']);
  assert.is(r.code, 1, `${name}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, pattern, name);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.is(lines(r.stdout)[0].status, 'RUNNING');
  assert.equal(stopMarkers(h, name), [], `${name}: no marker for a refused stop`);
}

test(
  'item 10: forged records pointing at live processes that are not bgmon jobs: refused, nothing signalled',
  withHome(async (h) => {
    const follower = h.spawnOutside('sleep', ['1000']); // in the runner's group: leads nothing
    const leader = h.spawnOutside('sleep', ['1000'], { detached: true }); // leads its own session, carries no marker
    const marked = spawn('sleep', ['1000'], { stdio: 'ignore', env: { ...h.env, BGMON_JOB_ID: 'forged-marked' } });
    try {
      const f = await eventually(() => readStat(follower.pid!));
      const l = await eventually(() => readStat(leader.pid!));
      const m = await eventually(() => readStat(marked.pid!));
      forge(h, 'follower', { pid: f.pid, starttime: f.starttime });
      forge(h, 'leader', { pid: l.pid, starttime: l.starttime });
      forge(h, 'leader2', {
        pid: l.pid,
        starttime: l.starttime,
        sup_pid: process.pid,
        sup_starttime: readStat(process.pid)!.starttime,
      });
      forge(h, 'marked', { pid: m.pid, starttime: m.starttime });
      await assertRefused(
        h,
        'follower',
        new RegExp(
          String.raw`^bgmon-stop: job follower: pid \d+ does not lead its own process group and session, ` +
            'so it is not a bgmon job; nothing signalled$',
          'm',
        ),
      );
      await assertRefused(
        h,
        'leader',
        new RegExp(
          String.raw`^bgmon-stop: job leader: pid \d+ carries no BGMON_JOB_ID=forged-leader and is not the child ` +
            "of this job's supervisor; nothing signalled$",
          'm',
        ),
      );
      await assertRefused(h, 'leader2', /carries no BGMON_JOB_ID/);
      await assertRefused(h, 'marked', /does not lead its own process group and session/);
      await sleep(200);
      for (const p of [f.pid, l.pid, m.pid]) assert.ok(isAlive(p), `pid ${p} was not signalled`);
    } finally {
      for (const child of [follower, leader, marked]) child.kill('SIGKILL');
    }
  }),
);

test(
  "item 10: forged records naming pid 1, the test runner or the runner's group leader: refused, never kill(-1)",
  withHome(async (h) => {
    const one = readStat(1)!;
    const me = readStat(process.pid)!;
    forge(h, 'init', { pid: 1, starttime: one.starttime });
    forge(h, 'zero', { pid: 0, starttime: 0 });
    forge(h, 'runner', { pid: process.pid, starttime: me.starttime });
    await assertRefused(
      h,
      'init',
      /^bgmon-stop: job init: the record names pid 1, and bgmon never signals pid 0 or 1; nothing signalled$/m,
    );
    const zero = await h.run('bgmon-stop', ['zero', '--grace', '0']);
    // pid 0 is never alive: the job is DEAD, and stopping an ended job changes nothing (exit 0)
    assert.is(zero.code, 0, zero.stderr);
    assert.is(zero.stderr, '');
    assert.is(lines(zero.stdout)[0].status, 'DEAD');
    await assertRefused(h, 'runner', /does not lead its own process group and session/);
    const lead = readStat(me.pgrp);
    if (lead && me.pgrp > 1) {
      const parent = readStat(lead.ppid);
      forge(h, 'group', { pid: lead.pid, starttime: lead.starttime });
      await assertRefused(h, 'group', /nothing signalled/);
      if (parent && parent.pid > 1) {
        forge(h, 'group2', {
          pid: lead.pid,
          starttime: lead.starttime,
          sup_pid: parent.pid,
          sup_starttime: parent.starttime,
        });
        await assertRefused(h, 'group2', /nothing signalled/);
      }
    }
    assert.ok(isAlive(process.pid));
  }),
);

const canSwitchUser = process.getuid?.() === 0;
const epermTest = canSwitchUser ? test : test.skip;

epermTest(
  `item 9: a job stop cannot signal (EPERM): exit 1 and why, not exit 0 and ` +
    `RUNNING${canSwitchUser ? '' : ' (SKIPPED: needs root to run bgmon-stop as uid 65534)'}`,
  () =>
    withForeignJob(async ({ home, jobPid, supPid, runAsNobody }) => {
      const r = await runAsNobody('bgmon-stop', ['rootjob', '--grace', '0']);
      assert.is(r.code, 1, r.stdout + r.stderr);
      assert.match(
        r.stderr,
        new RegExp(
          `^bgmon-stop: job rootjob did not end: kill\\(\\) of pid ${jobPid} was refused \\(EPERM: operation not ` +
            `permitted\\)\\n$`,
        ),
      );
      assert.is(lines(r.stdout)[0].status, 'RUNNING');
      assert.ok(isAlive(jobPid) && isAlive(supPid));
      assert.equal(listDir(join(home, 'run')), [], 'a stop that did not happen leaves no marker');
    }),
);

/** Decided up front: a small tmpfs needs root and CAP_SYS_ADMIN. */
const noTmpfs = tmpfsUnavailable();
const diskTest = noTmpfs === null ? test : test.skip;

diskTest(
  `item 13: the job that filled the disk is stopped: exit 0, STOPPED, no internal error` +
    (noTmpfs ? ` (SKIPPED: cannot mount a tmpfs: ${noTmpfs})` : ''),
  withHome(async (h) => {
    await withSmallDisk(h, '2m', async (mnt, env) => {
      const start = await h.run(
        'bgmon-start',
        ['--name', 'filler', '--', 'sh', '-c', `head -c 4000000 /dev/zero; ${TERM_TRAPPER}`],
        { env },
      );
      assert.is(start.code, 0, start.stderr);
      const rec = JSON.parse(start.stdout);
      await eventually(() => statfsSync(mnt).bavail === 0, 10_000, 'the disk to fill');
      assert.ok(isAlive(rec.pid), 'the job runs on, on a full disk');
      const r = await h.run('bgmon-stop', ['filler', '--grace', '10s'], { env });
      assert.is(r.stderr, '');
      assert.is(r.code, 0);
      const [out] = lines(r.stdout);
      assert.is(out.status, 'STOPPED', r.stdout);
      assert.match(out.ended_at, ISO);
      assert.equal(groupMembers(rec.pid), []);
      assert.is(JSON.parse(readFileSync(join(mnt, 'home', 'jobs', 'filler.json'), 'utf8')).status, 'STOPPED');
    });
  }),
);

test.run();
