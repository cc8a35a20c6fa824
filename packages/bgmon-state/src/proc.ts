import { readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';

export interface ProcStat {
  pid: number;
  /** R, S, D, Z, T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  session: number;
  /** clock ticks after boot: with the boot id, the identity of a process */
  starttime: number;
  /** wait(2) status of a zombie (field 52); 0 for a live process */
  exitStatus: number;
  /** user and system CPU time, in clock ticks (clockTicksPerSecond) */
  utime: number;
  stime: number;
  /** resident set size, in pages (pageSizeKb) */
  rss: number;
}

/** Reads /proc/<pid>/stat (of thread `tid`: /proc/<pid>/task/<tid>/stat); null when there is none. */
export function readStat(pid: number, tid?: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'latin1');
  } catch {
    return null;
  }
  // comm may hold spaces and ')' itself: the fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: f[0],
    ppid: Number(f[1]),
    pgrp: Number(f[2]),
    session: Number(f[3]),
    starttime: Number(f[19]),
    exitStatus: Number(f[49] ?? 0),
    utime: Number(f[11]),
    stime: Number(f[12]),
    rss: Number(f[21]),
  };
}

/** The signal masks of /proc/<pid>/status (SigPnd, ShdPnd, SigBlk, SigIgn, SigCgt); null when gone. */
export function signalMasks(pid: number): Map<string, bigint> | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  const masks = new Map<string, bigint>();
  for (const m of text.matchAll(/^(Sig\w+|ShdPnd):\s*([0-9a-f]+)$/gm)) masks.set(m[1], BigInt(`0x${m[2]}`));
  return masks;
}

/** True when signal number `signal` is set in the mask `field` of signalMasks. */
export const maskHas = (masks: Map<string, bigint> | null, field: string, signal: number): boolean =>
  (((masks?.get(field) ?? 0n) >> BigInt(signal - 1)) & 1n) === 1n;

/**
 * The process runs none of its own code until it is continued: it is stopped (T; t under a
 * tracer), or it sleeps in the kernel (D) while a stop holds it. The second is a shell that
 * vforked a child the same SIGSTOP caught before its exec: the parent waits for that child and
 * stops only after both are continued. Its SIGSTOP is still pending, or, in a process with
 * threads, another thread took it and is stopped (group stop: every thread stops).
 */
export function isPaused(pid: number, state = readStat(pid)?.state): boolean {
  if (isStopped(state)) return true;
  if (state !== 'D') return false;
  const masks = signalMasks(pid);
  const { SIGSTOP } = constants.signals;
  return maskHas(masks, 'ShdPnd', SIGSTOP) || maskHas(masks, 'SigPnd', SIGSTOP) || hasStoppedThread(pid);
}

/** T: stopped by a signal; t: stopped by a tracer. */
const isStopped = (state: string | undefined) => state === 'T' || state === 't';

function hasStoppedThread(pid: number): boolean {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return false;
  }
  return tids.some((tid) => tid !== String(pid) && isStopped(readStat(pid, Number(tid))?.state));
}

let auxv: Map<number, number> | undefined;
/** The kernel's auxiliary vector for this process (64-bit pairs): sysconf's own source. */
function auxValue(type: number): number | undefined {
  if (!auxv) {
    auxv = new Map();
    try {
      const buf = readFileSync('/proc/self/auxv');
      for (let i = 0; i + 16 <= buf.length; i += 16)
        auxv.set(Number(buf.readBigUInt64LE(i)), Number(buf.readBigUInt64LE(i + 8)));
    } catch {}
  }
  return auxv.get(type);
}

/** sysconf(_SC_CLK_TCK): the unit of utime, stime and starttime (AT_CLKTCK; 100 on Linux). */
export const clockTicksPerSecond = (): number => auxValue(17) || 100;
/** sysconf(_SC_PAGESIZE) in kB: the unit of rss in /proc/<pid>/stat (AT_PAGESZ; 4 on x86). */
export const pageSizeKb = (): number => (auxValue(6) || 4096) / 1024;

let cachedBootId: string | undefined;
export function bootId(): string {
  cachedBootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'latin1').trim();
  return cachedBootId;
}

/** True when pid is alive (zombies count as gone) and still the process we recorded. */
export function isSameProcess(
  pid: number | null | undefined,
  starttime: number | null | undefined,
  boot: string | null | undefined,
): boolean {
  if (!pid || boot !== bootId()) return false;
  const st = readStat(pid);
  return st !== null && st.state !== 'Z' && st.starttime === starttime;
}

export function listPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const c = entry.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(entry));
  }
  return pids;
}

/** The process's environment as the kernel shows it now; null when unreadable (gone, another user's). */
export function readEnviron(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return null;
  }
}

/** An environment (as readEnviron reads it) holds the entry NAME=VALUE exactly. */
export const envHas = (env: string, entry: string): boolean =>
  env.startsWith(`${entry}\0`) || env.includes(`\0${entry}\0`);

/** Every value of `key` in an environment (as readEnviron reads it). */
export function envValues(env: string, key: string): string[] {
  const prefix = `${key}=`;
  return env
    .split('\0')
    .filter((e) => e.startsWith(prefix))
    .map((e) => e.slice(prefix.length));
}

/** True when the process's environment holds exactly `key=value`; false when unreadable (not ours). */
export const environHas = (pid: number, entry: string): boolean => {
  const env = readEnviron(pid);
  return env !== null && envHas(env, entry);
};

/** Every value of `key` in the process's environment ([] when unreadable: not ours). */
export const environValues = (pid: number, key: string): string[] => envValues(readEnviron(pid) ?? '', key);

const SIGNAL_NAMES = new Map<number, string>(Object.entries(constants.signals).map(([name, num]) => [num, name]));
// glibc's real-time range, named as kill -l and bash name it (32 and 33 belong to the C library)
const SIGRTMIN = 34;
const SIGRTMAX = 64;

/** SIGTERM, SIGRTMIN+2, SIGRTMAX-1, SIG32: the name of any signal number 1-64. */
export function signalName(num: number): string {
  const known = SIGNAL_NAMES.get(num);
  if (known) return known;
  if (num === SIGRTMIN) return 'SIGRTMIN';
  if (num === SIGRTMAX) return 'SIGRTMAX';
  if (num > SIGRTMIN && num <= SIGRTMIN + 15) return `SIGRTMIN+${num - SIGRTMIN}`;
  if (num > SIGRTMIN + 15 && num < SIGRTMAX) return `SIGRTMAX-${SIGRTMAX - num}`;
  return `SIG${num}`;
}

/**
 * Every signal name parseSignal accepts, without "SIG", in number order (aliases such as IOT
 * beside their signal), then the real-time range as bash's kill -l names it. Help texts, man
 * pages and the bash completion list these, so they name exactly what is accepted.
 */
export function signalNames(): string[] {
  const named = Object.entries(constants.signals)
    .sort(([, a], [, b]) => a - b)
    .map(([name]) => name.slice(3));
  const rtmin = Array.from({ length: 15 }, (_, i) => `RTMIN+${i + 1}`);
  const rtmax = Array.from({ length: 14 }, (_, i) => `RTMAX-${14 - i}`);
  return [...named, 'RTMIN', ...rtmin, ...rtmax, 'RTMAX'];
}

/** Accepts TERM, SIGTERM, sigterm, RTMIN+2, SIGRTMAX-1, SIG36 or a number; returns the signal number, or null. */
export function parseSignal(text: string): number | null {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    return n >= 1 && n <= 64 ? n : null;
  }
  const upper = text.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  const num = (constants.signals as Record<string, number>)[name];
  if (typeof num === 'number') return num;
  const rt = /^SIGRT(MIN|MAX)(?:([+-])(\d{1,2}))?$/.exec(name);
  if (rt) {
    const offset = rt[2] ? Number(rt[3]) * (rt[2] === '+' ? 1 : -1) : 0;
    const n = (rt[1] === 'MIN' ? SIGRTMIN : SIGRTMAX) + offset;
    return n >= SIGRTMIN && n <= SIGRTMAX ? n : null;
  }
  const plain = /^SIG(\d{1,2})$/.exec(name);
  return plain && Number(plain[1]) >= 1 && Number(plain[1]) <= 64 ? Number(plain[1]) : null;
}
