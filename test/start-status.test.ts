import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readStat } from 'bgmon-state';
import {
  binPath,
  ended,
  eventually,
  fileMode,
  isAlive,
  lines,
  listDir,
  staleRecord,
  until,
  untilGone,
  untilOnDisk,
  withHome,
} from './helpers';

const CONTRACT_FIELDS = [
  'v',
  'name',
  'id',
  'status',
  'cmd',
  'cwd',
  'pid',
  'started_at',
  'ended_at',
  'exit_code',
  'signal',
  'log',
  'after',
  'host',
  'boot_id',
  'starttime',
];
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

test(
  'start prints the record, writes it, and the job ends SUCCEEDED with exit_code 0',
  withHome(async (h) => {
    // the job waits for the file "go": everything below looks at it while it surely runs
    const cmd = ['sh', '-c', 'echo out; echo err >&2; while [ ! -e go ]; do sleep 0.05; done'];
    const r = await h.run('bgmon-start', ['--name', 'ok', '--', ...cmd]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const printed = JSON.parse(r.stdout);
    for (const f of CONTRACT_FIELDS) assert.ok(f in printed, `field ${f}`);
    assert.equal(h.record('ok'), printed);
    assert.is(printed.v, 1);
    assert.is(printed.status, 'RUNNING');
    assert.equal(printed.cmd, cmd);
    assert.is(printed.cwd, h.dir);
    assert.is(printed.log, join(h.root, 'logs', 'ok.log'));
    assert.equal(printed.after, []);
    assert.ok(ISO.test(printed.started_at));
    assert.is(printed.ended_at, null);
    assert.is(printed.exit_code, null);
    const st = readStat(printed.pid)!;
    assert.is(st.starttime, printed.starttime);
    assert.is(st.pgrp, printed.pid, 'job leads its own process group');
    assert.is(st.session, printed.pid, 'job leads its own session');
    assert.is(readlinkSync(`/proc/${printed.pid}/fd/0`), '/dev/null');
    assert.is(readlinkSync(`/proc/${printed.pid}/fd/1`), printed.log, 'stdout goes straight to the log');
    assert.is(readlinkSync(`/proc/${printed.pid}/fd/2`), printed.log, 'stderr too');
    assert.is((await h.status('ok')).status, 'RUNNING');
    writeFileSync(join(h.dir, 'go'), '');
    const done = await until(h, 'ok', 'SUCCEEDED');
    assert.is(done.exit_code, 0);
    assert.is(done.signal, null);
    assert.ok(ISO.test(done.ended_at));
    assert.is(done.id, printed.id);
    // bgmon-status folds only when the name is free: while the supervisor's own fold holds it,
    // the record file is written by that fold, done once the supervisor (then Node) has exited
    await untilGone([printed.sup_pid], 'the supervisor');
    assert.is(h.record('ok').status, 'SUCCEEDED', 'the end is folded into the record on disk');
    assert.is(readFileSync(printed.log, 'utf8'), 'out\nerr\n');
  }),
);

test(
  'a job exiting 3 is FAILED with exit_code 3',
  withHome(async (h) => {
    await h.start('three', ['sh', '-c', 'exit 3']);
    const s = await until(h, 'three', ended);
    assert.is(s.status, 'FAILED');
    assert.is(s.exit_code, 3);
    assert.is(s.signal, null);
  }),
);

test(
  'a job killed by SIGKILL from outside is FAILED with signal SIGKILL',
  withHome(async (h) => {
    const rec = await h.start('victim', ['sleep', '100']);
    process.kill(rec.pid, 'SIGKILL');
    const s = await until(h, 'victim', ended);
    assert.is(s.status, 'FAILED');
    assert.is(s.signal, 'SIGKILL');
    assert.is(s.exit_code, null);
    assert.ok(ISO.test(s.ended_at));
  }),
);

test(
  'the job survives its starting shell being killed with SIGHUP, and still records its exit',
  withHome(async (h) => {
    // the job ends when the test says so, not after a sleep a loaded machine can outlast
    const release = join(h.dir, 'release-survivor');
    const job = `until [ -e ${release} ]; do sleep 0.05; done; exit 7`;
    const start = `"${process.execPath}" "${binPath('bgmon-start')}" --name survivor`;
    const script = `${start} -- sh -c '${job}'; echo started; sleep 100`;
    // detached: the shell leads a session of its own, as a login shell does
    const shell = h.spawnOutside('sh', ['-c', script], { detached: true });
    await untilOnDisk(h, 'survivor', 'RUNNING');
    assert.is(readStat(shell.pid!)!.session, shell.pid);
    process.kill(-shell.pid!, 'SIGHUP');
    await untilGone([shell.pid!], 'the shell');
    assert.is((await h.status('survivor')).status, 'RUNNING');
    writeFileSync(release, '');
    const s = await until(h, 'survivor', ended);
    assert.is(s.status, 'FAILED');
    assert.is(s.exit_code, 7);
  }),
);

test(
  'supervisor and job both SIGKILLed: DEAD, never RUNNING',
  withHome(async (h) => {
    const rec = await h.start('doomed', ['sleep', '100']);
    process.kill(rec.sup_pid, 'SIGKILL');
    process.kill(rec.pid, 'SIGKILL');
    await untilGone([rec.pid, rec.sup_pid], 'job and supervisor');
    const s = await h.status('doomed');
    assert.is(s.status, 'DEAD');
    assert.is(s.exit_code, null);
  }),
);

test(
  'a record whose starttime does not match its live pid is STALE',
  withHome(async (h) => {
    const other = h.spawnOutside('sleep', ['100']);
    await eventually(() => readStat(other.pid!));
    staleRecord(h, 'reused', other.pid!);
    const s = await h.status('reused');
    assert.is(s.status, 'STALE');
    assert.ok(isAlive(other.pid!));
  }),
);

test(
  'hostile names exit 2 and create nothing anywhere',
  withHome(async (h) => {
    for (const name of ['../x', 'a/b', '', 'a'.repeat(129), 'a\nb', '.', '..', '/abs', '-x', 'a b']) {
      const r = await h.run('bgmon-start', ['--name', name, '--', 'true']);
      assert.is(r.code, 2, `name ${JSON.stringify(name)}: ${r.stderr}`);
      assert.is(r.stdout, '');
      assert.is(r.stderr.trim().split('\n').length, 1);
      assert.not.ok(existsSync(h.root), `nothing created for ${JSON.stringify(name)}`);
    }
    assert.equal(listDir(h.dir), []);
    assert.is(
      (await h.run('bgmon-start', ['--name', 'a'.repeat(128), '--', 'true'])).code,
      0,
      '128 characters is fine',
    );
  }),
);

test(
  'home is 0700 and every file 0600 even under umask 000',
  withHome(async (h) => {
    const r = await h.run('/bin/sh', [
      '-c',
      `umask 000; exec "${process.execPath}" "${binPath('bgmon-start')}" --name u -- sh -c 'echo x'`,
    ]);
    assert.is(r.code, 0, r.stderr);
    await until(h, 'u', 'SUCCEEDED');
    assert.is(fileMode(h.root), 0o700);
    for (const dir of ['jobs', 'logs', 'run']) {
      assert.is(fileMode(join(h.root, dir)), 0o700, dir);
      for (const f of listDir(join(h.root, dir))) assert.is(fileMode(join(h.root, dir, f)), 0o600, `${dir}/${f}`);
    }
    assert.ok(listDir(join(h.root, 'jobs')).includes('u.json'));
    assert.ok(listDir(join(h.root, 'logs')).includes('u.log'));
  }),
);

test(
  'a corrupt record: status lists the others, names the bad file on stderr, exits 1',
  withHome(async (h) => {
    await h.start('good', ['true']);
    h.handWritten.add('bad');
    writeFileSync(join(h.root, 'jobs', 'bad.json'), '{"v":1,"name":', { mode: 0o600 });
    const r = await h.run('bgmon-status', ['--json']);
    assert.is(r.code, 1);
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['good'],
    );
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^bgmon-status: .*bad\.json: corrupt record/);
  }),
);

test(
  '--help, --version and unknown flags on start and status',
  withHome(async (h) => {
    for (const bin of ['bgmon-start', 'bgmon-status']) {
      const help = await h.run(bin, ['--help']);
      assert.is(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: ${bin}`));
      assert.match(help.stdout, /Examples:/);
      assert.is(help.stderr, '');
      const version = await h.run(bin, ['--version']);
      assert.is(version.code, 0);
      assert.match(version.stdout, new RegExp(`^${bin} \\d+\\.\\d+\\.\\d+\\n$`));
      const bad = await h.run(bin, ['--frobnicate']);
      assert.is(bad.code, 2);
      assert.is(bad.stdout, '');
      assert.is(bad.stderr, `${bin}: unknown option --frobnicate (see --help)\n`);
    }
    assert.not.ok(existsSync(h.root));
  }),
);

test(
  'a missing or non-executable command exits 127 and leaves no job',
  withHome(async (h) => {
    const missing = await h.run('bgmon-start', ['--name', 'nope', '--', 'no-such-command-bgmon']);
    assert.is(missing.code, 127);
    assert.is(missing.stderr, 'bgmon-start: no-such-command-bgmon: command not found\n');
    const file = join(h.dir, 'notexec.sh');
    writeFileSync(file, '#!/bin/sh\necho hi\n');
    chmodSync(file, 0o644);
    const notExec = await h.run('bgmon-start', ['--name', 'nope', '--', file]);
    assert.is(notExec.code, 127);
    assert.is(notExec.stdout, '');
    assert.not.ok(existsSync(join(h.root, 'jobs', 'nope.json')));
    const st = await h.run('bgmon-status', ['--json']);
    assert.is(st.stdout, '');
  }),
);

test(
  'a RUNNING name cannot be started again; a finished one is replaced and its log kept',
  withHome(async (h) => {
    const first = await h.start('dup', ['sh', '-c', 'echo first; sleep 100']);
    const again = await h.run('bgmon-start', ['--name', 'dup', '--', 'true']);
    assert.is(again.code, 1);
    assert.match(again.stderr, /^bgmon-start: job dup is RUNNING/);
    assert.is(h.record('dup').id, first.id);
    process.kill(first.pid, 'SIGKILL');
    await until(h, 'dup', 'FAILED');
    const second = await h.start('dup', ['sh', '-c', 'echo second']);
    assert.is.not(second.id, first.id);
    assert.is(second.previous_log, join(h.root, 'logs', `dup@${first.id}.log`));
    assert.is(readFileSync(second.previous_log, 'utf8'), 'first\n');
    await until(h, 'dup', 'SUCCEEDED');
    assert.is(readFileSync(second.log, 'utf8'), 'second\n');
  }),
);

test(
  'status: names, globs, --status filter, table, unknown name',
  withHome(async (h) => {
    await h.start('stage_a', ['true']);
    await h.start('stage_b', ['sh', '-c', 'exit 1']);
    await h.start('other', ['sleep', '100']);
    await until(h, 'stage_b', 'FAILED');
    await until(h, 'stage_a', 'SUCCEEDED');
    const all = lines((await h.run('bgmon-status')).stdout).map((r) => r.name);
    assert.equal(all, ['stage_a', 'stage_b', 'other'], 'oldest first, NDJSON when not a terminal');
    assert.equal(
      lines((await h.run('bgmon-status', ['stage_*'])).stdout).map((r) => r.name),
      ['stage_a', 'stage_b'],
    );
    assert.equal(
      lines((await h.run('bgmon-status', ['--status', 'FAILED,running'])).stdout).map((r) => r.name),
      ['stage_b', 'other'],
    );
    const table = await h.run('bgmon-status', ['--table']);
    const rows = table.stdout.trim().split('\n');
    assert.match(rows[0], /^NAME\s+STATUS\s+PID\s+START\s+AGE\s+EXIT\s+CMD$/);
    assert.match(rows[1], /^stage_a\s+SUCCEEDED\s+\d+\s+\d\d:\d\d\s+\d+s\s+0\s+true$/);
    assert.match(rows[2], /^stage_b\s+FAILED\s+\d+\s+\d\d:\d\d\s+\d+s\s+1\s+sh -c 'exit 1'$/);
    assert.match(rows[3], /^other\s+RUNNING\s+\d+\s+\d\d:\d\d\s+\d+s\s+-\s+sleep 100$/);
    const missing = await h.run('bgmon-status', ['nope']);
    assert.is(missing.code, 3);
    assert.is(missing.stderr, 'bgmon-status: no such job: nope\n');
    assert.is((await h.run('bgmon-status', ['nope*'])).code, 3);
    assert.is((await h.run('bgmon-status', ['--status', 'BOGUS'])).code, 2);
    assert.is((await h.run('bgmon-status', ['../x'])).code, 2);
  }),
);

test(
  'status on a home that does not exist yet lists nothing and creates nothing',
  withHome(async (h) => {
    const r = await h.run('bgmon-status');
    assert.is(r.code, 0);
    assert.is(r.stdout, '');
    assert.not.ok(existsSync(h.root));
  }),
);

test(
  'without --name the name is the command basename plus a short suffix',
  withHome(async (h) => {
    const r = await h.run('bgmon-start', ['--', '/bin/true']);
    assert.is(r.code, 0, r.stderr);
    assert.match(JSON.parse(r.stdout).name, /^true-[0-9a-f]{6}$/);
    const s = await h.run('bgmon-start', ['sh', '-c', 'exit 0']);
    assert.match(JSON.parse(s.stdout).name, /^sh-[0-9a-f]{6}$/, 'the first non-option word starts the command');
  }),
);

test(
  'arguments that look like record fields, newlines and unicode cannot confuse the recorded end',
  withHome(async (h) => {
    const tricky = [
      'sh',
      '-c',
      'exit 9',
      '"status":"RUNNING","ended_at":null,"exit_code":null,"signal":null',
      'line\nbreak',
      'ünï"cødé\\',
    ];
    const rec = await h.start('tricky', tricky);
    assert.equal(rec.cmd, tricky);
    const end = await until(h, 'tricky', ended);
    assert.is(end.status, 'FAILED');
    assert.is(end.exit_code, 9);
    assert.equal(h.record('tricky').cmd, tricky, 'the command is recorded exactly as given');
    assert.is(readFileSync(join(h.root, 'jobs', 'tricky.json'), 'utf8').split('\n').length, 2, 'still one line');
  }),
);

test.run();
