import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  age,
  isValidName,
  nameMatcher,
  parseDuration,
  parseSignal,
  readStat,
  shortTime,
  signalName,
  table,
  UsageError,
} from 'bgmon-state';
import { readNamesFromStdin } from 'bgmon-state/cli';
import { eventually, testTmp } from './helpers';

const isUsage = (err: unknown) => err instanceof UsageError && (err as UsageError).exitCode === 2;

test('names: the contract pattern, nothing else', () => {
  for (const ok of ['a', 'A9', 'x.y-z_1', '9lives', 'a'.repeat(128)]) assert.ok(isValidName(ok), ok);
  for (const bad of [
    '',
    '.',
    '..',
    '../x',
    'a/b',
    '/abs',
    '-a',
    '_a',
    '.a',
    'a b',
    'a\nb',
    'a'.repeat(129),
    'ａ',
    'é',
    'a\0b',
    'a@b',
  ])
    assert.not.ok(isValidName(bad), JSON.stringify(bad));
});

test('globs: *, ?, [..], [!..]; a glob never addresses a path', () => {
  assert.ok(nameMatcher('stage_*')('stage_12'));
  assert.not.ok(nameMatcher('stage_*')('xstage_1'));
  assert.ok(nameMatcher('a?c')('abc'));
  assert.ok(nameMatcher('job[12]')('job2'));
  assert.not.ok(nameMatcher('job[!12]')('job1'));
  assert.ok(nameMatcher('a.b')('a.b'));
  assert.not.ok(nameMatcher('a.*')('ab'), 'a dot is literal');
  assert.throws(() => nameMatcher('../*'), isUsage);
  assert.throws(() => nameMatcher('a/*'), isUsage);
});

test('durations: units, decimals; negative, non-finite and garbage refused', () => {
  assert.is(parseDuration('500ms', '--t'), 500);
  assert.is(parseDuration('10s', '--t'), 10_000);
  assert.is(parseDuration('1.5', '--t'), 1500);
  assert.is(parseDuration('5m', '--t'), 300_000);
  assert.is(parseDuration('2h', '--t'), 7_200_000);
  assert.is(parseDuration('0', '--t'), 0);
  for (const bad of ['-1', 'abc', '1e309', '', '10 s', 'Infinity', 'NaN', '1e3', '999999999h'])
    assert.throws(() => parseDuration(bad, '--t'), isUsage, bad);
});

test('signals: names, SIG prefix, any case, numbers', () => {
  assert.is(parseSignal('TERM'), 15);
  assert.is(parseSignal('sigkill'), 9);
  assert.is(parseSignal('2'), 2);
  assert.is(parseSignal('64'), 64);
  for (const bad of ['0', '65', 'BOGUS', '', '-9', 'SIG']) assert.is(parseSignal(bad), null, bad);
  assert.is(signalName(9), 'SIGKILL');
});

test('readStat parses fields after the last ")" even when the command name has spaces and parens', async () => {
  const dir = mkdtempSync(join(testTmp(), 'bgmon-unit-'));
  const weird = join(dir, 'a) b (c');
  copyFileSync('/bin/sleep', weird);
  const child = spawn(weird, ['100'], { stdio: 'ignore' });
  try {
    const st = await eventually(() => {
      const s = readStat(child.pid!);
      return s && s.ppid === process.pid && s;
    });
    assert.is(st.ppid, process.pid);
    assert.ok(['S', 'R'].includes(st.state));
    assert.ok(st.starttime > 0);
    assert.is(readStat(process.pid)!.starttime, readStat(process.pid)!.starttime);
  } finally {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
  assert.is(readStat(2 ** 22 + 12345), null);
});

test('stdin NDJSON: blank lines skipped; any bad line rejects everything', async () => {
  const read = (text: string) => readNamesFromStdin(Readable.from([text]));
  assert.equal(await read('{"name":"a"}\n\n{"name":"b","x":1}\n'), ['a', 'b']);
  assert.equal(await read(''), []);
  for (const bad of ['{"name":"a"}\nnope\n', '{"name":"a/b"}\n', '"a"\n', 'null\n', '{"name":5}\n']) {
    const err = await read(bad).then(
      () => null,
      (e) => e,
    );
    assert.instance(err, UsageError, bad);
  }
});

test('table and age', () => {
  assert.is(age('2026-01-01T00:00:00.000Z', '2026-01-01T00:01:05.000Z'), '1m5s');
  assert.is(age('2026-01-01T00:00:00.000Z', '2026-01-01T01:30:00.000Z'), '1h30m');
  assert.is(age('2026-01-01T00:00:00.000Z', '2026-01-01T03:00:00.000Z'), '3h');
  assert.is(age('2026-01-01T00:00:00.000Z', '2026-01-03T00:00:00.000Z'), '2d');
  assert.is(age(null, null), '-');
  const rec: any = {
    name: 'n',
    status: 'FAILED',
    pid: 12,
    started_at: '2026-01-01T00:00:00.000Z',
    created_at: '2026-01-01T00:00:00.000Z',
    ended_at: '2026-01-01T00:00:03.000Z',
    exit_code: null,
    signal: 'SIGKILL',
  };
  const start = shortTime(rec.started_at, Date.parse('2026-01-01T00:00:05.000Z'));
  assert.is(
    table([{ ...rec, cmd: ['x'] }], { now: Date.parse('2026-01-01T00:00:05.000Z') }),
    `NAME  STATUS  PID  START  AGE  EXIT     CMD\nn     FAILED  12   ${start}  3s   SIGKILL  x\n`,
  );
});

test.run();
