import { UsageError } from './errors';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, '': 1000 };
// Longer than any timer Node can arm (2^31-1 ms) is refused rather than silently wrapped.
const MAX_MS = 2 ** 31 - 1;

/** Parses `500ms`, `10s`, `5m`, `2h` or plain (decimal) seconds into milliseconds. */
export function parseDuration(text: unknown, flag: string): number {
  const m = typeof text === 'string' ? /^(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?$/.exec(text.trim()) : null;
  if (!m) throw new UsageError(`${flag}: invalid duration ${JSON.stringify(String(text))} (use e.g. 500ms, 10s, 5m, 2h or seconds)`);
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? ''];
  if (!Number.isFinite(ms) || ms > MAX_MS) throw new UsageError(`${flag}: duration ${text} is too long`);
  return Math.round(ms);
}
