import type { ExtraColumn } from './output';
import { join } from 'node:path';
import type { Home } from './paths';
import { clockTicksPerSecond, isSameProcess, pageSizeKb } from './proc';
import { readOwnFile, writeFileAtomic } from './fsutil';
import { jobsProcesses, leaderProblem, processTable } from './stop';
import type { JobRecord } from './record';

/** What `bgmon-status --resources` adds to every record (null for a job that does not run). */
export interface Resources {
  /** resident memory of every process of the job together, in kB */
  rss_kb: number | null;
  /** user + system CPU time of those processes, in ms (from clock ticks: sysconf CLK_TCK) */
  cpu_ms: number | null;
  /** how many processes the job has (its group, session, and escaped children) */
  procs: number | null;
  /** CPU share since the previous sample, in % of one CPU (200 = two CPUs busy); null on the first */
  cpu_pct: number | null;
}

export type WithResources = JobRecord & Resources;

const NONE: Resources = { rss_kb: null, cpu_ms: null, procs: null, cpu_pct: null };

/**
 * The last sample of every running job, shared by all callers: one small file, one write per call.
 * A call looks at the jobs it selected; the others' samples are kept (for a day) with their own
 * times, so `--resources a` then `--resources b` then `--resources a` still gives a its share.
 */
interface Sample {
  at: number;
  cpu: Record<string, number>;
  /** when each run was sampled (absent in files of earlier versions: then `at`) */
  at_of?: Record<string, number>;
}

const KEEP_SAMPLE_MS = 86_400_000;
const sampledAt = (s: Sample, id: string) => s.at_of?.[id] ?? s.at;

const samplePath = (home: Home) => join(home.run, 'cpu-sample.json');

function readSample(home: Home): Sample | null {
  try {
    const s = JSON.parse(readOwnFile(samplePath(home)));
    return typeof s?.at === 'number' && typeof s.cpu === 'object' && s.cpu !== null ? s : null;
  } catch {
    return null; // none yet, or unreadable: no share this time
  }
}

function cpuPct(prev: Sample | null, id: string, cpuMs: number, now: number): number | null {
  const before = prev?.cpu[id];
  const at = prev ? sampledAt(prev, id) : NaN;
  if (typeof before !== 'number' || !(now > at)) return null;
  // a child that ended takes its CPU time with it (to its parent's cutime): never below 0
  return Math.round((Math.max(0, cpuMs - before) / (now - at)) * 1000) / 10;
}

/** The samples of runs this call does not look at, kept while they are less than a day old. */
function keptSamples(prev: Sample | null, now: number): Sample {
  const next: Sample = { at: now, cpu: {}, at_of: {} };
  for (const [id, ms] of Object.entries(prev?.cpu ?? {})) {
    const at = sampledAt(prev!, id);
    if (typeof ms !== 'number' || typeof at !== 'number' || !(now - at < KEEP_SAMPLE_MS)) continue;
    next.cpu[id] = ms;
    next.at_of![id] = at;
  }
  return next;
}

/**
 * A record whose leader lives as recorded but is provably not this home's run (a record copied
 * from another home or name: bgmon-stop refuses it too): its processes are another job's.
 */
function isOthersJob(home: Home, rec: JobRecord): boolean {
  return rec.pid !== null && isSameProcess(rec.pid, rec.starttime, rec.boot_id) && leaderProblem(home, rec) !== null;
}

/**
 * The records with resource fields. /proc is read once (every pid's stat, plus the environment
 * of processes outside every job's group), then grouped by job: never once per job.
 */
export function withResources(home: Home, records: readonly JobRecord[]): WithResources[] {
  const live = records.filter((r) => (r.status === 'RUNNING' || r.status === 'PAUSED') && !isOthersJob(home, r));
  if (live.length === 0) return records.map((r) => ({ ...r, ...NONE }));
  const table = processTable();
  const groups = jobsProcesses(live, table);
  const now = Date.now();
  const prev = readSample(home);
  const next = keptSamples(prev, now);
  const msPerTick = 1000 / clockTicksPerSecond();
  const kbPerPage = pageSizeKb();
  const found = new Map<string, Resources>();
  for (const rec of live) {
    const stats = (groups.get(rec.id) ?? []).map((pid) => table.get(pid)!);
    const cpuMs = Math.round(stats.reduce((sum, st) => sum + st.utime + st.stime, 0) * msPerTick);
    const rssKb = stats.reduce((sum, st) => sum + st.rss, 0) * kbPerPage;
    next.cpu[rec.id] = cpuMs;
    next.at_of![rec.id] = now;
    found.set(rec.id, { rss_kb: rssKb, cpu_ms: cpuMs, procs: stats.length, cpu_pct: cpuPct(prev, rec.id, cpuMs, now) });
  }
  try {
    writeFileAtomic(samplePath(home), JSON.stringify(next) + '\n');
  } catch {
    // a full disk or a read-only home: the next call has no share, nothing else is lost
  }
  return records.map((r) => ({ ...r, ...(found.get(r.id) ?? NONE) }));
}

const kb = (n: number) =>
  n >= 10 * 1024 * 1024 ? `${Math.round(n / 1024 / 1024)}G` : n >= 10 * 1024 ? `${Math.round(n / 1024)}M` : `${n}K`;
const secs = (ms: number) => (ms >= 600_000 ? `${Math.round(ms / 60_000)}m` : `${(ms / 1000).toFixed(1)}s`);

/** Appends RSS, CPU (time), %CPU and PROCS to a status table, one cell per record row. */
/** The table's RSS CPU %CPU PROCS columns (after EXIT), "-" for a job that does not run. */
export const RESOURCE_COLUMNS: ExtraColumn[] = [
  { title: 'RSS', cell: (r) => ((r as WithResources).procs == null ? '-' : kb((r as WithResources).rss_kb!)) },
  { title: 'CPU', cell: (r) => ((r as WithResources).procs == null ? '-' : secs((r as WithResources).cpu_ms!)) },
  { title: '%CPU', cell: (r) => ((r as WithResources).cpu_pct == null ? '-' : String((r as WithResources).cpu_pct)) },
  { title: 'PROCS', cell: (r) => ((r as WithResources).procs == null ? '-' : String((r as WithResources).procs)) },
];
