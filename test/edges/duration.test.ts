import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseDuration, UsageError } from 'bgmon-state';

const isUsage = (err: unknown) => err instanceof UsageError && (err as UsageError).exitCode === 2;
const ms = (text: string, max?: number) => parseDuration(text, '--t', max);
const S = 1000;
const M = 60 * S;
const H = 60 * M;
const D = 24 * H;

test('days: 7d, 1d, decimals of a day', () => {
  assert.is(ms('7d'), 7 * D);
  assert.is(ms('1d'), D);
  assert.is(ms('0.5d'), 12 * H);
  assert.is(ms('24d'), 24 * D, 'just under the timer limit of 2^31-1 ms');
});

test('compounds: every unit, largest first, each once', () => {
  assert.is(ms('1h30m'), H + 30 * M);
  assert.is(ms('2d4h'), 2 * D + 4 * H);
  assert.is(ms('1m30s500ms'), M + 30 * S + 500);
  assert.is(ms('1d2h3m4s5ms'), D + 2 * H + 3 * M + 4 * S + 5);
  assert.is(ms('5m5ms'), 5 * M + 5, 'm then ms is not read as m, m, s');
  assert.is(ms('1.5h30m'), 2 * H);
  assert.is(ms(' 1h30m '), H + 30 * M, 'surrounding blanks are ignored, as before');
  assert.is(ms('0d0s'), 0);
});

test('single units and plain seconds still read as before', () => {
  for (const [text, want] of [
    ['500ms', 500],
    ['10s', 10 * S],
    ['1.5', 1500],
    ['.5', 500],
    ['5m', 5 * M],
    ['2h', 2 * H],
    ['0', 0],
  ] as const) {
    assert.is(ms(text), want, text);
  }
});

test('malformed compounds are usage errors naming the flag and the forms', () => {
  const bad = [
    '30m1h',
    '1h1h',
    '1s1s',
    '500ms1s',
    '1h30',
    '1h 30m',
    'h30m',
    '1h-30m',
    '1hm',
    '1H',
    '7D',
    '1d-1h',
    'd',
    '1w',
    '-1d',
    '1e3s',
    '1h30m ms',
    '1,5h',
    '',
    ' ',
    '1h_30m',
    '١h',
  ];
  for (const text of bad) {
    assert.throws(() => ms(text), isUsage, JSON.stringify(text));
    try {
      ms(text);
    } catch (err) {
      assert.match(
        (err as Error).message,
        /^--t: invalid duration .* \(use e\.g\. 500ms, 10s, 5m, 2h, 7d, 1h30m or seconds\)$/,
      );
    }
  }
  assert.throws(() => parseDuration(undefined, '--t'), isUsage);
  assert.throws(() => parseDuration(7, '--t'), isUsage);
});

test('a duration longer than a timer can wait is refused, unless the caller allows more', () => {
  for (const text of ['25d', '24d20h32m', '596h31m23s648ms', `${'9'.repeat(400)}d`]) {
    assert.throws(
      () => ms(text),
      (err: unknown) => isUsage(err) && /too long/.test((err as Error).message),
      text,
    );
  }
  assert.is(ms('24d20h31m23s647ms'), 2 ** 31 - 1, 'exactly the limit');
  assert.is(ms('90d', Number.MAX_SAFE_INTEGER), 90 * D);
  assert.throws(() => ms(`${'9'.repeat(400)}d`, Number.MAX_SAFE_INTEGER), isUsage, 'non-finite is never accepted');
});

test.run();
