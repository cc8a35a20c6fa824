// Watching without blocking: bgmon-wait --until (readiness) and --idle (hung jobs), the log's
// activity in every status record, and a table people can read.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readlinkSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { age, commandLine, cut, shortTime, span, table } from 'bgmon-state';
import {
  binPath,
  deadRecord,
  eventually,
  homeProcs,
  lines,
  listDir,
  schemaProblems,
  sleep,
  slowTest,
  until,
  withHome,
  type TestHome,
} from '../helpers';

const node = process.execPath;
const bin = (name: string) => `"${node}" "${binPath(name)}"`;

/**
 * bgmon-wait --until REGEX ...: run as a plain command, since what it prints on a match is a log
 * line ({"name","id","line","offset"}, as bgmon-tail --json), not a record for the schema check.
 */
/** True once this home's bgmon-wait has an inotify descriptor (its watches are set up). */
function inotifyWaiter(h: TestHome): boolean {
  const links = (pid: number) =>
    listDir(`/proc/${pid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
  const isWait = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('bgmon-wait');
    } catch {
      return false;
    }
  };
  return homeProcs(h.root).some((pid) => isWait(pid) && links(pid).some((l) => l.includes('inotify')));
}

const waitUntil = (h: TestHome, args: string[]) => h.run(node, [binPath('bgmon-wait'), '--until', ...args]);

test(
  '--until: a server that prints its ready line after a delay; `wait --until && tests` runs the tests then',
  withHome(async (h) => {
    const server = 'echo starting; sleep 1; echo "listening on 127.0.0.1:3000"; echo serving; sleep 1000';
    const rec = await h.start('api', ['sh', '-c', server]);
    const script = `${bin('bgmon-wait')} --until 'listening on' --timeout 60s api && echo tests-ran`;
    const r = await h.run('/bin/sh', ['-c', script]);
    // the line is written a second after the job started, not after bgmon-wait did (which a loaded
    // machine may start most of that second later): measured from the job's start
    const sinceStart = Date.now() - Date.parse(rec.started_at);
    assert.is(r.code, 0, r.stderr);
    const [match, ran] = r.stdout.trimEnd().split('\n');
    assert.equal(JSON.parse(match), { name: 'api', id: rec.id, line: 'listening on 127.0.0.1:3000', offset: 37 });
    assert.is(ran, 'tests-ran');
    assert.ok(sinceStart >= 1000, `returned ${sinceStart} ms after the job started, before the line was written`);
    assert.is((await h.status('api')).status, 'RUNNING', 'it returned while the server runs');
    // a line already written counts too: the log is read from its start
    const again = await waitUntil(h, ['^starting$', 'api']);
    assert.is(again.code, 0, again.stderr);
    assert.equal(lines(again.stdout), [{ name: 'api', id: rec.id, line: 'starting', offset: 9 }]);
  }),
);

slowTest(
  "--until: a link planted at the log path is not read through (its lines are not the job's)",
  withHome(async (h) => {
    const fake = join(h.dir, 'fake');
    writeFileSync(fake, 'listening on 127.0.0.1:3000\n');
    const rec = await h.start('quiet', ['sh', '-c', 'echo starting; sleep 1000']);
    unlinkSync(rec.log);
    symlinkSync(fake, rec.log);
    const r = await waitUntil(h, ['listening on', '--timeout', '2s', 'quiet']);
    assert.is(r.code, 124, r.stdout);
    const status = lines((await h.run('bgmon-status', ['quiet', '--json'])).stdout)[0];
    assert.equal([status.status, status.log_bytes], ['RUNNING', null], 'no size read through the link either');
  }),
);

test(
  '--until reacts to the line within a generous bound of its write (inotify, not a poll)',
  withHome(async (h) => {
    const go = join(h.dir, 'go');
    const stamp = join(h.dir, 'stamp');
    await h.start('srv', [
      'sh',
      '-c',
      `while [ ! -e ${go} ]; do sleep 0.01; done; date +%s%N > ${stamp}; echo READY; sleep 1000`,
    ]);
    const pending = waitUntil(h, ['READY', 'srv']);
    // the bound below is for the reaction to the write: the waiter must be watching before it
    await eventually(() => inotifyWaiter(h), 15_000, 'bgmon-wait to watch the home');
    writeFileSync(go, '');
    const r = await pending;
    const returned = Date.now();
    assert.is(r.code, 0, r.stderr);
    const wroteMs = Number(BigInt(readFileSync(stamp, 'utf8').trim()) / 1_000_000n);
    // the bench measures the latency (<= 50 ms); here only a bound no loaded machine misses
    assert.ok(returned - wroteMs < 2000, `took ${returned - wroteMs} ms`);
  }),
);

test(
  '--until: the run ends first: 1 when it succeeded, its own code, 128+n for a signal; 124 on timeout',
  withHome(async (h) => {
    await h.start('ok', ['sh', '-c', 'echo nothing here']);
    await h.start('three', ['sh', '-c', 'echo no; exit 3']);
    const killed = await h.start('killed', ['sh', '-c', 'echo up; exec sleep 1000']);
    assert.is((await waitUntil(h, ['ready', 'ok'])).code, 1);
    const t = await waitUntil(h, ['ready', 'three']);
    assert.is(t.code, 3);
    assert.is(lines(t.stdout)[0].status, 'FAILED', 'the record is printed when no line matched');
    assert.is(schemaProblems(lines(t.stdout)[0]), null);
    const pending = waitUntil(h, ['ready', 'killed']);
    await sleep(300);
    process.kill(killed.pid, 'SIGKILL');
    assert.is((await pending).code, 137);
    await h.start('slow', ['sleep', '1000']);
    const timeout = await waitUntil(h, ['ready', '--timeout', '500ms', 'slow']);
    assert.is(timeout.code, 124);
    assert.is(lines(timeout.stdout)[0].status, 'RUNNING');
  }),
);

test(
  '--until: a last line without newline counts once the run ends; one job only; a bad regex is exit 2',
  withHome(async (h) => {
    await h.start('partial', ['sh', '-c', "printf 'a\\nready-no-newline'"]);
    const r = await waitUntil(h, ['ready', 'partial']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(lines(r.stdout), [
      { name: 'partial', id: (await h.status('partial')).id, line: 'ready-no-newline', offset: 18 },
    ]);
    await h.start('other', ['true']);
    const two = await waitUntil(h, ['x', 'partial', 'other']);
    assert.is(two.code, 2);
    assert.is(two.stderr, "bgmon-wait: --until reads one job's log; the selection has 2 jobs\n");
    assert.is((await waitUntil(h, ['ready', 'p*'])).code, 0, 'a glob that selects one job is one job');
    const bad = await waitUntil(h, ['a(b', 'partial']);
    assert.is(bad.code, 2);
    assert.is(bad.stdout, '');
    assert.match(bad.stderr, /^bgmon-wait: --until: invalid regular expression "a\(b": .+\n$/);
  }),
);

slowTest(
  '--until reads the current run only, and a line longer than 1 MiB is matched on its first 1 MiB',
  withHome(async (h) => {
    await h.start('job', ['sh', '-c', 'echo ready']);
    await until(h, 'job', 'SUCCEEDED');
    await h.start('job', ['sh', '-c', 'sleep 0.3; echo not-yet']);
    assert.is((await waitUntil(h, ['ready', 'job'])).code, 1, "the replaced run's line does not count");
    // 'late' lies past the first MiB of its line; 'early' within it
    const long =
      `head -c 2000000 /dev/zero | tr '\\0' x; echo late; printf early; ` +
      `head -c 2000000 /dev/zero | tr '\\0' y; echo`;
    await h.start('long', ['sh', '-c', long]);
    assert.is((await waitUntil(h, ['late', 'long'])).code, 1);
    const r = await waitUntil(h, ['^early', 'long']);
    assert.is(r.code, 0, r.stderr);
    const [m] = lines(r.stdout);
    assert.is(m.line.length, 1024 * 1024);
    assert.is(m.offset, 2000000 + 5 + 5 + 2000000 + 1);
  }),
);

test(
  'status: log_bytes and last_output_at from the log, null without one; --idle selects silent RUNNING jobs',
  withHome(async (h) => {
    const t0 = Date.now();
    await h.start('hung', ['sh', '-c', 'echo working; sleep 1000']);
    await h.start('busy', ['sh', '-c', 'while true; do echo tick; sleep 0.1; done']);
    await h.start('mute', ['sleep', '1000']);
    await h.start('later', ['true'], ['--after', 'mute']);
    const hung = await eventually(async () => {
      const r = await h.status('hung');
      return r.log_bytes === 8 && r;
    });
    // the log's mtime, whenever the loaded machine got here; the file clock may lag a tick, and a
    // time before the start is the start's
    const mtime = new Date(statSync(join(h.root, 'logs', 'hung.log')).mtimeMs).toISOString();
    assert.is(hung.last_output_at, [mtime, hung.started_at].sort()[1]);
    assert.ok(
      Date.parse(hung.last_output_at) >= t0 - 100 && Date.parse(hung.last_output_at) <= Date.now(),
      hung.last_output_at,
    );
    const mute = await h.status('mute');
    assert.is(mute.log_bytes, 0);
    assert.is(mute.last_output_at, null, 'no output yet');
    const later = await h.status('later');
    assert.is(later.status, 'QUEUED');
    assert.is(later.log_bytes, null);
    assert.is(later.last_output_at, null);
    assert.not.ok('log_bytes' in h.record('hung'), 'never written to the record file');
    await sleep(1500);
    const idle = await h.run('bgmon-status', ['--idle', '1s', '--json']);
    assert.is(idle.code, 0, idle.stderr);
    assert.equal(
      lines(idle.stdout)
        .map((r) => r.name)
        .sort(),
      ['hung', 'mute'],
    );
    const tbl = await h.run('bgmon-status', ['--idle', '1s', '--table']);
    // idle for as long as the machine took since the output: at least 1 s, not always one digit
    const idleFor = /^hung +RUNNING .* idle (\d+)s +sh -c /.exec(tbl.stdout.split('\n')[1]);
    assert.ok(idleFor, tbl.stdout);
    const silentS = (Date.now() - Date.parse(hung.last_output_at)) / 1000;
    assert.ok(Number(idleFor[1]) >= 1 && Number(idleFor[1]) <= silentS, `idle ${idleFor[1]}s, silent ${silentS} s`);
    assert.is((await h.run('bgmon-status', ['--idle', 'soon'])).code, 2);
  }),
);

test(
  'wait --idle: returns 125 with the record when the job prints then hangs; its own code when it ends first',
  withHome(async (h) => {
    await h.start('hang', ['sh', '-c', 'echo step1; sleep 0.3; echo step2; sleep 1000']);
    const r = await h.run('bgmon-wait', ['--idle', '1s', 'hang']);
    // silent for 1 s since its last line, which it may have printed before bgmon-wait started
    const silentMs = Date.now() - Date.parse(lines(r.stdout)[0]?.last_output_at);
    assert.is(r.code, 125, r.stderr);
    const [rec] = lines(r.stdout);
    assert.is(rec.status, 'RUNNING');
    assert.is(rec.log_bytes, 12);
    assert.ok(silentMs >= 1000, `returned ${silentMs} ms after its last output`);
    await h.start('chatty', ['sh', '-c', 'for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.2; done; exit 4']);
    const c = await h.run('bgmon-wait', ['--idle', '1s', 'chatty']);
    assert.is(c.code, 4, 'never silent for 1s: it ends first');
  }),
);

test(
  'table: NAME STATUS PID START AGE EXIT NOTE CMD, CMD cut to $COLUMNS, reasons for CANCELLED and DEAD',
  withHome(async (h) => {
    await h.start('bad', ['sh', '-c', 'exit 1']);
    await until(h, 'bad', 'FAILED');
    await h.start('dep', ['echo', 'a long argument that will not fit', 'at all'], ['--after', 'bad']);
    deadRecord(h, 'ghost');
    const r = await h.run('bgmon-status', ['--table'], { env: { COLUMNS: '110' } });
    const rows = r.stdout.trimEnd().split('\n');
    assert.match(rows[0], /^NAME +STATUS +PID +START +AGE +EXIT +NOTE +CMD$/);
    for (const row of rows) assert.ok(row.length <= 110, `${row.length}: ${row}`);
    const dep = rows.find((l) => l.startsWith('dep'))!;
    assert.match(dep, /CANCELLED .* bad@\S+ ended FAILED +echo 'a long/, r.stdout);
    assert.ok(dep.endsWith('…'), dep);
    assert.match(rows.find((l) => l.startsWith('ghost'))!, /DEAD .*process gone, no exit.*… {2}sleep 1000$/);
    assert.is((await h.status('ghost')).reason, 'process gone, no exit recorded (supervisor killed, OOM or reboot)');
    const wide = await h.run('bgmon-status', ['--table'], { env: { COLUMNS: '' } });
    assert.match(wide.stdout, /echo 'a long argument that will not fit' 'at all'\n/, 'no width known: no cut');
    assert.match(
      wide.stdout,
      /ghost +DEAD .*process gone, no exit recorded \(supervisor killed, OOM or reboot\) +sleep 1000\n/,
    );
  }),
);

test('table cells: precise AGE, short START, one-line CMD, cut', () => {
  assert.is(span(45_000), '45s');
  assert.is(span(90_000), '1m30s');
  assert.is(span((2 * 3600 + 59 * 60 + 59) * 1000), '2h59m');
  assert.is(span((3 * 86400 + 4 * 3600) * 1000), '3d4h');
  assert.is(span(7 * 86400_000), '7d');
  assert.is(age('garbage', null), '-');
  assert.is(age('2024-01-01T00:00:00.000Z', 'nonsense'), '-');
  assert.is(age(null, null), '-');
  assert.is(age('2024-01-01T00:00:00.000Z', '2024-01-01T02:59:00.000Z'), '2h59m');
  const now = new Date(2024, 5, 10, 15, 30).getTime();
  assert.is(shortTime(new Date(2024, 5, 10, 9, 5).toISOString(), now), '09:05');
  assert.is(shortTime(new Date(2024, 5, 9, 23, 59).toISOString(), now), '06-09 23:59');
  assert.is(shortTime('garbage', now), '-');
  assert.is(commandLine(['sh', '-c', "echo 'hi'\nrm x\t\x1b"]), "sh -c 'echo '\\''hi'\\''\\nrm x\\t\\x1b'");
  assert.is(cut('abcdef', 4), 'abc…');
  assert.is(cut('abc', 4), 'abc');
  assert.is(cut('ab😀cd', 4), 'ab…', 'never half a character');
  const t = table([], {});
  assert.is(t, 'NAME  STATUS  PID  START  AGE  EXIT  CMD\n');
});

test(
  'wait prints the records with their log activity too',
  withHome(async (h) => {
    await h.start('w', ['sh', '-c', 'echo one']);
    const r = await h.run('bgmon-wait', ['w']);
    assert.is(lines(r.stdout)[0].log_bytes, 4);
  }),
);

test.run();
