import { rawLine, type JobRecord } from './record';
import { DEAD_REASON } from './run-state';
import { activityLine, silentMs, type Activity } from './activity';
import { isTty } from './fsutil';

export type OutputMode = 'json' | 'table';

/** --json and --table force a mode; otherwise a table on a terminal, records in a pipe. */
export function outputMode(flags: Record<string, unknown>): OutputMode {
  if (flags.json) return 'json';
  if (flags.table) return 'table';
  return isTty(1) ? 'table' : 'json';
}

export function ndjson(records: readonly object[]): string {
  // joined once, not appended: 10,000 appended lines are a deep rope that stdout must flatten
  return records.map((r) => activityLine(r) ?? rawLine(r) ?? JSON.stringify(r) + '\n').join('');
}

// A start a little ahead of the clock reading it is rounding, not a time in the future.
const CLOCK_SLACK_MS = 1000;
const UNITS: [string, number][] = [
  ['d', 86_400],
  ['h', 3600],
  ['m', 60],
  ['s', 1],
];

/** A span in its two largest units, the second left out when zero: 45s, 1m30s, 2h59m, 3d4h, 7d. */
export function span(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const i = UNITS.findIndex(([, size]) => s >= size);
  if (i < 0 || i === UNITS.length - 1) return `${s}s`;
  const [unit, size] = UNITS[i];
  const [next, nextSize] = UNITS[i + 1];
  const rest = Math.floor((s % size) / nextSize);
  return `${Math.floor(s / size)}${unit}${rest > 0 ? `${rest}${next}` : ''}`;
}

/** Time from `from` to `to` (or now), e.g. 2h59m; '-' when unknown, unreadable or negative. */
export function age(from: string | null, to: string | null, now = Date.now()): string {
  if (!from) return '-';
  const ms = (to ? Date.parse(to) : now) - Date.parse(from);
  if (!Number.isFinite(ms) || ms < -CLOCK_SLACK_MS) return '-';
  return span(ms);
}

const two = (n: number) => String(n).padStart(2, '0');

/** A local time, short: HH:MM today, else MM-DD HH:MM; '-' when unknown or unreadable. */
export function shortTime(iso: string | null, now = Date.now()): string {
  const t = iso ? new Date(iso) : null;
  if (!t || !Number.isFinite(t.getTime())) return '-';
  const today = new Date(now);
  const hhmm = `${two(t.getHours())}:${two(t.getMinutes())}`;
  const sameDay =
    t.getFullYear() === today.getFullYear() && t.getMonth() === today.getMonth() && t.getDate() === today.getDate();
  return sameDay ? hhmm : `${two(t.getMonth() + 1)}-${two(t.getDate())} ${hhmm}`;
}

function exitColumn(r: JobRecord): string {
  if (r.signal) return r.signal;
  return r.exit_code === null ? '-' : String(r.exit_code);
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * Control characters escaped (\\n, \\t, \\xNN), so a table row or a relayed line stays one line;
 * so are line and paragraph separators and the bidirectional controls (\\uNNNN), which would let
 * a command read as another (text shown right to left) or break the row.
 */
export const oneLine = (text: string) =>
  text.replace(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });

/** Quotes one word for a POSIX shell (also what ssh hands the remote): in single quotes, each ' closed and escaped. */
export const shellQuote = (word: string): string => `'${word.replace(/'/g, `'\\''`)}'`;

/** A command line as a shell would read it (words quoted where needed), on one line. */
export function commandLine(cmd: readonly string[]): string {
  return oneLine(cmd.map((a) => (SAFE_WORD.test(a) ? a : shellQuote(a))).join(' '));
}

// Characters a terminal draws in no column (combining marks, zero-width joiners and spaces)
const ZERO_WIDTH = /[\p{Mn}\p{Me}\u200b-\u200d\u2060\ufeff]/u;
// ... and in two: East Asian wide and fullwidth characters, and emoji drawn as pictures
const DOUBLE_WIDTH = new RegExp(
  `[${[
    '\\u1100-\\u115f\\u2e80-\\u303e\\u3041-\\u33ff\\u3400-\\u4dbf\\u4e00-\\u9fff\\ua000-\\ua4cf\\uac00-\\ud7a3',
    '\\uf900-\\ufaff\\ufe30-\\ufe4f\\uff00-\\uff60\\uffe0-\\uffe6\\u{20000}-\\u{3fffd}\\p{Emoji_Presentation}',
  ].join('')}]`,
  'u',
);

/** How many terminal columns one character takes. */
const columnsOf = (ch: string) => (ZERO_WIDTH.test(ch) ? 0 : DOUBLE_WIDTH.test(ch) ? 2 : 1);

/** How many terminal columns text takes (a table cell: its characters, not its UTF-16 units). */
export function displayWidth(text: string): number {
  // ASCII, the usual cell, is one column a character
  if (/^[\x20-\x7e]*$/.test(text)) return text.length;
  let width = 0;
  for (const ch of text) width += columnsOf(ch);
  return width;
}

/** text cut to n terminal columns, the last one an ellipsis when something was left out; never half a character. */
export function cut(text: string, n: number): string {
  if (displayWidth(text) <= n) return text;
  if (n <= 0) return '';
  let kept = '';
  let width = 0;
  for (const ch of text) {
    const w = columnsOf(ch);
    if (width + w > n - 1) break;
    kept += ch;
    width += w;
  }
  return kept + '…';
}

/** text padded with spaces to n terminal columns. */
const pad = (text: string, n: number) => text + ' '.repeat(Math.max(0, n - displayWidth(text)));

/** The terminal's width: stdout's columns, else $COLUMNS; null (no limit) when unknown. */
export function terminalWidth(env: NodeJS.ProcessEnv = process.env): number | null {
  if (process.stdout.isTTY && process.stdout.columns > 0) return process.stdout.columns;
  const cols = Number(env.COLUMNS);
  return Number.isSafeInteger(cols) && cols > 0 ? cols : null;
}

/** A column added after EXIT (bgmon-status --resources). */
export interface ExtraColumn {
  title: string;
  cell: (r: JobRecord) => string;
}

export interface TableOptions {
  /** columns between EXIT and NOTE */
  columns?: ExtraColumn[];
  /** the line width CMD is cut to; null or absent: no limit */
  width?: number | null;
  /** a RUNNING job silent this long (ms) is marked "idle <span>" in NOTE; absent: never */
  idleMs?: number;
  now?: number;
}

/**
 * The NOTE cell: how long a RUNNING job has been silent (past the mark), when a QUEUED run may
 * start (--in, --at), or why a run ended as it did.
 */
function noteColumn(r: JobRecord & Partial<Activity>, opts: TableOptions, now: number): string {
  if (r.status === 'QUEUED') {
    const at = typeof r.not_before === 'string' ? Date.parse(r.not_before) : NaN;
    return at > now ? `starts ${shortTime(r.not_before!, now)}` : '';
  }
  if (r.status === 'RUNNING') {
    const silent = silentMs(r, now);
    return opts.idleMs !== undefined && silent !== null && silent >= opts.idleMs ? `idle ${span(silent)}` : '';
  }
  if (r.reason) return oneLine(r.reason);
  // a DEAD record folded by an earlier version has no reason of its own
  return r.status === 'DEAD' ? DEAD_REASON : '';
}

function tableRow(r: JobRecord, opts: TableOptions, now: number): string[] {
  const pid = r.pid === null ? '-' : String(r.pid);
  const cmd = Array.isArray(r.cmd) ? commandLine(r.cmd) : '-';
  const extra = (opts.columns ?? []).map((c) => c.cell(r));
  const started = shortTime(r.started_at, now);
  return [
    r.name,
    r.status,
    pid,
    started,
    age(r.started_at ?? r.created_at, r.ended_at, now),
    exitColumn(r),
    ...extra,
    noteColumn(r, opts, now),
    cmd,
  ];
}

/** With a known width, CMD keeps at least this much beside NOTE, and NOTE at least this much. */
const MIN_CELL = 20;

/** How wide NOTE (when present) and CMD may be so a row fits `width`; Infinity without one. */
function cellLimits(
  widths: number[],
  noteAt: number,
  hasNote: boolean,
  width: number | null | undefined,
): [number, number] {
  if (!width) return [Infinity, Infinity];
  const fixed = widths.slice(0, noteAt).reduce((sum, w) => sum + w + 2, 0);
  const rest = width - fixed;
  if (!hasNote) return [0, Math.max(rest, 3)];
  const note = Math.min(widths[noteAt], Math.max(MIN_CELL, rest - 2 - MIN_CELL));
  return [note, Math.max(rest - note - 2, 3)];
}

/**
 * NAME STATUS PID START AGE EXIT [extra columns] [NOTE] CMD: NOTE only when a row has one; with a
 * width, NOTE and CMD (last) are cut so a row fits (the full text is in the --json records). Plain
 * text, no colour.
 */
export function table(records: readonly JobRecord[], opts: TableOptions = {}): string {
  const now = opts.now ?? Date.now();
  const titles = (opts.columns ?? []).map((c) => c.title);
  const noteAt = 6 + titles.length;
  const header = ['NAME', 'STATUS', 'PID', 'START', 'AGE', 'EXIT', ...titles, 'NOTE', 'CMD'];
  let rows = [header, ...records.map((r) => tableRow(r, opts, now))];
  const hasNote = rows.some((row, i) => i > 0 && row[noteAt] !== '');
  if (!hasNote) rows = rows.map((row) => [...row.slice(0, noteAt), row[noteAt + 1]]);
  const widthsNow = rows[0].map((_, i) => Math.max(...rows.map((row) => displayWidth(row[i]))));
  const [noteWidth, cmdWidth] = cellLimits(widthsNow, noteAt, hasNote, opts.width);
  rows = rows.map((row) => row.map((cell, i) => (i === noteAt && hasNote ? cut(cell, noteWidth) : cell)));
  const last = rows[0].length - 1;
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => displayWidth(row[i]))));
  const line = (row: string[]) =>
    row.map((cell, i) => (i === last ? cut(cell, cmdWidth) : pad(cell, widths[i]))).join('  ');
  return rows.map(line).join('\n') + '\n';
}

export function formatRecords(records: readonly JobRecord[], mode: OutputMode, opts: TableOptions = {}): string {
  return mode === 'json' ? ndjson(records) : table(records, { width: terminalWidth(), ...opts });
}
