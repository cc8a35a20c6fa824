import { isatty } from 'node:tty';
import { rawLine, type JobRecord } from './record';

export type OutputMode = 'json' | 'table';

/** --json and --table force a mode; otherwise a table on a terminal, records in a pipe. */
export function outputMode(flags: Record<string, unknown>): OutputMode {
  if (flags.json) return 'json';
  if (flags.table) return 'table';
  return isatty(1) ? 'table' : 'json';
}

export function ndjson(records: readonly object[]): string {
  let out = '';
  for (const r of records) out += rawLine(r) ?? JSON.stringify(r) + '\n';
  return out;
}

// A start a little ahead of the clock reading it is rounding, not a time in the future.
const CLOCK_SLACK_MS = 1000;

/** Time from `from` to `to` (or now), e.g. 90m; '-' when unknown, unreadable or negative. */
export function age(from: string | null, to: string | null, now = Date.now()): string {
  if (!from) return '-';
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < -CLOCK_SLACK_MS) return '-';
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

function exitColumn(r: JobRecord): string {
  if (r.signal) return r.signal;
  return r.exit_code === null ? '-' : String(r.exit_code);
}

export function table(records: readonly JobRecord[]): string {
  const rows = [['NAME', 'STATUS', 'PID', 'AGE', 'EXIT']];
  for (const r of records) rows.push([r.name, r.status, r.pid === null ? '-' : String(r.pid), age(r.started_at ?? r.created_at, r.ended_at), exitColumn(r)]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ')).join('\n') + '\n';
}

export function formatRecords(records: readonly JobRecord[], mode: OutputMode): string {
  return mode === 'json' ? ndjson(records) : table(records);
}
