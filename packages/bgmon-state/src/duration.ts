import { UsageError } from './errors';

const UNIT_MS: Record<string, number> = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000, ms: 1 };
// Longer than any timer Node can arm (2^31-1 ms) is refused rather than silently wrapped.
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The accepted forms, as help texts and error messages name them. */
export const DURATION_FORMS = '500ms, 10s, 5m, 2h, 7d, 1h30m or seconds';

const NUMBER = String.raw`(?:\d+(?:\.\d+)?|\.\d+)`;
const PLAIN_SECONDS = new RegExp(`^${NUMBER}$`);
const COMPOUND = new RegExp(`^(?:${NUMBER}(?:ms|s|m|h|d))+$`);
const PART = new RegExp(`(${NUMBER})(ms|s|m|h|d)`, 'g');
const ORDER = ['d', 'h', 'm', 's', 'ms'];

/**
 * Parses `500ms`, `10s`, `5m`, `2h`, `7d`, compounds such as `1h30m` or `1m30s500ms`, or plain
 * (decimal) seconds into milliseconds. In a compound each unit appears once, largest first
 * (`30m1h` is refused: it is more likely a typo than a wish). `maxMs` bounds the result; the
 * default is what a timer can wait.
 */
export function parseDuration(text: unknown, flag: string, maxMs: number = MAX_TIMER_MS): number {
  const trimmed = typeof text === 'string' ? text.trim() : '';
  const ms = PLAIN_SECONDS.test(trimmed) ? Number(trimmed) * 1000 : compoundMs(trimmed);
  if (ms === null)
    throw new UsageError(`${flag}: invalid duration ${JSON.stringify(String(text))} (use e.g. ${DURATION_FORMS})`);
  if (!Number.isFinite(ms) || ms > maxMs) throw new UsageError(`${flag}: duration ${trimmed} is too long`);
  return Math.round(ms);
}

function compoundMs(text: string): number | null {
  if (!COMPOUND.test(text)) return null;
  let total = 0;
  let lastUnit = -1;
  for (const [, amount, unit] of text.matchAll(PART)) {
    const rank = ORDER.indexOf(unit);
    if (rank <= lastUnit) return null;
    lastUnit = rank;
    total += Number(amount) * UNIT_MS[unit];
  }
  return total;
}
