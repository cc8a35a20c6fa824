import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Ajv from 'ajv';
import { test } from 'uvu';
import { bootId, environHas, listPids, maskHas, readStat, signalMasks } from 'bgmon-state';

export const ROOT = resolve(__dirname, '..');
export const BINS = ['bgmon-start', 'bgmon-status', 'bgmon-stop', 'bgmon-signal', 'bgmon-tail', 'bgmon-wait'] as const;
export const binPath = (bin: string) => join(ROOT, 'packages', bin, 'bin', bin);

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  input?: string;
  /** keep stdin open and silent (a pipe nobody writes to) */
  openStdin?: boolean;
  env?: Record<string, string>;
  cwd?: string;
  timeoutMs?: number;
}

/**
 * For the slowest tests (a gigabyte of output, a hundred killed starts...): run by `pnpm test:all`
 * (and CI), reported as skipped by the default `pnpm test`, which must stay under a minute.
 */
/**
 * Where tests make their temporary directories: the run's own directory when scripts/test.mjs
 * runs them (it removes it, whatever happened, also on Ctrl-C), else the system's.
 */
export const testTmp = (): string => process.env.BGMON_TEST_TMP || tmpdir();

export const slowTest: typeof test.skip = process.env.BGMON_TEST_ALL === '1' ? test : test.skip;

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/**
 * Spawns a process and collects its output; it is SIGKILLed after timeoutMs. `done` settles when
 * it has exited and its output is read. For every process a test starts and waits for.
 */
export function spawnCollect(
  command: string,
  argv: string[],
  spawnOpts: SpawnOptions,
  opts: RunOptions = {},
): { child: ChildProcess; done: Promise<Result> } {
  const started = Date.now();
  const child = spawn(command, argv, { ...spawnOpts, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c) => (stdout += c));
  child.stderr!.on('data', (c) => (stderr += c));
  child.stdin!.on('error', () => {});
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else if (!opts.openStdin) child.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const done = new Promise<Result>((settle) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (opts.openStdin) child.stdin!.destroy();
      settle({ code, signal, stdout, stderr, ms: Date.now() - started });
    }),
  );
  return { child, done };
}

const validateRecord = new Ajv({ allErrors: true }).compile(
  JSON.parse(readFileSync(join(ROOT, 'docs', 'record.schema.json'), 'utf8')),
);

/** Every record a bgmon command prints or leaves on disk must match docs/record.schema.json. */
export function schemaProblems(record: unknown): string | null {
  return validateRecord(record) ? null : JSON.stringify(validateRecord.errors);
}

/** The commands whose stdout is records (NDJSON); `bgmon CMD` runs one of them. */
const RECORD_COMMAND = /^bgmon-(start|status|stop|signal|wait|rm)$/;
const printsRecords = (bin: string, args: string[]) =>
  !args.includes('--until') &&
  (RECORD_COMMAND.test(bin) || (bin === 'bgmon' && RECORD_COMMAND.test(`bgmon-${args[0]}`)));

/** A temporary BGMON_HOME plus everything a test starts in it, all ended in cleanup(). */
export class TestHome {
  readonly root: string;
  readonly dir: string;
  private outside: ChildProcess[] = [];
  /** records that failed docs/record.schema.json */
  readonly schemaFailures: string[] = [];
  /** names whose record a test wrote by hand (not bgmon's output) */
  readonly handWritten = new Set<string>();
  /** how many records were checked against the schema */
  checkedRecords = 0;

  constructor() {
    this.dir = mkdtempSync(join(testTmp(), 'bgmon-test-'));
    this.root = join(this.dir, 'home');
  }

  /** A new directory of the test's own beside the home (a job's cwd, a place for files). */
  subdir(name: string): string {
    const path = join(this.dir, name);
    mkdirSync(path);
    return path;
  }

  /**
   * Checks every JSON object line of `text` (whatever its key order): one that does not parse,
   * is not an object or breaks the schema is a failure, unless a test wrote that name by hand.
   */
  private checkSchema(text: string, where: string): void {
    for (const line of text.split('\n')) {
      if (!line.trimStart().startsWith('{')) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch {
        this.schemaFailures.push(`${where}: not JSON: ${line.slice(0, 200)}`);
        continue;
      }
      const name = rec !== null && typeof rec === 'object' ? (rec as { name?: unknown }).name : undefined;
      if (typeof name === 'string' && this.handWritten.has(name)) continue;
      this.checkedRecords++;
      const problem = schemaProblems(rec);
      if (problem) this.schemaFailures.push(`${where}: ${problem}: ${line.slice(0, 500)}`);
    }
  }

  /** Records left in jobs/ by bgmon (not those a test wrote by hand) must match the schema too. */
  private checkRecordsOnDisk(): void {
    const jobs = join(this.root, 'jobs');
    for (const file of listDir(jobs)) {
      if (!file.endsWith('.json') || file.startsWith('.') || this.handWritten.has(file.slice(0, -5))) continue;
      try {
        this.checkSchema(readFileSync(join(jobs, file), 'utf8'), `jobs/${file}`);
      } catch {}
    }
  }

  get env(): Record<string, string> {
    return { ...(process.env as Record<string, string>), BGMON_HOME: this.root };
  }

  /** Runs a bgmon binary (or any command when `bin` is a path) and collects its output. */
  async run(bin: string, args: string[] = [], opts: RunOptions = {}): Promise<Result> {
    const command = bin.includes('/') ? bin : process.execPath;
    const argv = bin.includes('/') ? args : [binPath(bin), ...args];
    const { child, done } = spawnCollect(
      command,
      argv,
      { env: { ...this.env, ...opts.env }, cwd: opts.cwd ?? this.dir },
      opts,
    );
    this.outside.push(child);
    const result = await done;
    if (printsRecords(bin, args)) this.checkSchema(result.stdout, `${bin} ${args.join(' ')}`);
    return result;
  }

  /** bgmon-start; asserts success and returns the printed record. */
  async start(name: string, cmd: string[], extra: string[] = []): Promise<any> {
    const r = await this.run('bgmon-start', ['--name', name, ...extra, '--', ...cmd]);
    if (r.code !== 0) throw new Error(`bgmon-start ${name} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  async status(name: string): Promise<any> {
    const r = await this.run('bgmon-status', [name, '--json']);
    if (r.code !== 0) throw new Error(`bgmon-status ${name} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** The record file as it is on disk. */
  record(name: string): any {
    return JSON.parse(readFileSync(join(this.root, 'jobs', `${name}.json`), 'utf8'));
  }

  /** Writes a record by hand (creating the home as bgmon would); it is not held to the schema. */
  writeRecord(name: string, record: object): void {
    this.handWritten.add(name);
    for (const dir of ['', 'jobs', 'logs', 'run']) mkdirSync(join(this.root, dir), { recursive: true, mode: 0o700 });
    writeFileSync(join(this.root, 'jobs', `${name}.json`), JSON.stringify(record) + '\n', { mode: 0o600 });
  }

  /** Starts a process outside bgmon; it is killed by pid in cleanup(). */
  spawnOutside(
    cmd: string,
    args: string[],
    opts: { detached?: boolean; env?: Record<string, string> } = {},
  ): ChildProcess {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: opts.detached, env: { ...this.env, ...opts.env } });
    this.outside.push(child);
    return child;
  }

  /** Ends, by pid, every process whose environment says BGMON_HOME=<root>. */
  async killHome(root: string): Promise<void> {
    for (let round = 0; round < 3; round++) {
      for (const pid of homeProcs(root)) killQuietly(pid);
      await sleep(20);
    }
  }

  /** Ends every process of this home (by pid: jobs, their groups, supervisors) and removes it. */
  async cleanup(): Promise<void> {
    for (const child of this.outside) {
      if (child.exitCode === null && child.signalCode === null && child.pid) killQuietly(child.pid);
    }
    // Everything bgmon started here carries BGMON_HOME=<this home> in its environment.
    await this.killHome(this.root);
    try {
      chmodSync(this.root, 0o700);
    } catch {}
    this.checkRecordsOnDisk();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function killQuietly(pid: number): void {
  if (pid === process.pid || pid <= 1) return;
  try {
    process.kill(pid, 'SIGCONT');
    process.kill(pid, 'SIGKILL');
  } catch {}
}

type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

/** Polls until fn returns a truthy value; throws after timeoutMs, saying what it waited for. */
export async function eventually<T>(
  fn: () => T | Promise<T>,
  timeoutMs = 10_000,
  what: string | (() => string) = 'condition',
): Promise<Truthy<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as Truthy<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await sleep(20);
  }
}

export type Want = string | ((rec: any) => boolean);
const wanted = (want: Want) => (typeof want === 'string' ? (rec: any) => rec.status === want : want);
const describe = (name: string, want: Want, last: any) =>
  `${name} to be ${typeof want === 'string' ? want : 'as wanted'} (last seen: ` +
  `${last === undefined ? 'nothing' : JSON.stringify(last)})`;

/** True for a record in a terminal state. */
export const ended = (rec: any) => !['QUEUED', 'RUNNING', 'PAUSED'].includes(rec.status);

/** Whether a run has ended, from the files alone (no bgmon command runs): its record or its end file. */
export function endedOnDisk(h: TestHome, name: string): boolean {
  const rec = h.record(name);
  if (ended(rec)) return true;
  try {
    return /^\d+\n/.test(readFileSync(join(h.root, 'jobs', `.${name}@${rec.id}.end`), 'latin1'));
  } catch {
    return false;
  }
}

/** The workspace's packages: the library, then one per binary. */
export const PACKAGES = [
  'bgmon-state',
  'bgmon-start',
  'bgmon-status',
  'bgmon-stop',
  'bgmon-signal',
  'bgmon-tail',
  'bgmon-wait',
  'bgmon-rm',
  'bgmon',
];

/** Polls bgmon-status until the job is in state `want` (or `want(record)` holds); returns that record. */
export async function until(h: TestHome, name: string, want: Want, timeoutMs = 15_000): Promise<any> {
  const ok = wanted(want);
  let last: any;
  return eventually(
    async () => ((last = await h.status(name)), ok(last) && last),
    timeoutMs,
    () => describe(name, want, last),
  );
}

/** As until(), but reads the record file only: for what must happen with nobody calling bgmon. */
export async function untilOnDisk(h: TestHome, name: string, want: Want, timeoutMs = 15_000): Promise<any> {
  const ok = wanted(want);
  let last: any;
  const read = () => {
    try {
      return h.record(name);
    } catch {
      return undefined; // not written yet
    }
  };
  return eventually(
    () => ((last = read()), last !== undefined && ok(last) && last),
    timeoutMs,
    () => describe(`${name} on disk`, want, last),
  );
}

/**
 * A hand-written record (valid by the schema) that says RUNNING for the process the test names
 * in `fields` (pid, starttime...). The factory for forged, STALE and DEAD records.
 */
export function forgeRecord(h: TestHome, name: string, fields: Record<string, unknown> = {}): any {
  const now = new Date().toISOString();
  const rec = {
    v: 1,
    name,
    id: `forged-${name}`,
    status: 'RUNNING',
    cmd: ['sleep', '1000'],
    cwd: h.dir,
    pid: null,
    created_at: now,
    started_at: now,
    ended_at: null,
    exit_code: null,
    signal: null,
    log: join(h.root, 'logs', `${name}.log`),
    previous_log: null,
    after: [],
    host: hostname(),
    boot_id: bootId(),
    starttime: 0,
    sup_pid: null,
    sup_starttime: null,
    ...fields,
  };
  h.writeRecord(name, rec);
  return rec;
}

/** A RUNNING record whose pid now belongs to another live process (its starttime differs): STALE. */
export function staleRecord(h: TestHome, name: string, pid: number, fields: Record<string, unknown> = {}): any {
  const st = readStat(pid);
  if (!st) throw new Error(`staleRecord: no process ${pid}`);
  return forgeRecord(h, name, { pid, starttime: st.starttime + 1, ...fields });
}

/** Above any pid_max (2^22): never a live process. */
export const NO_SUCH_PID = 2 ** 22 + 1;

/** A RUNNING record of this boot whose process is gone and whose end was never recorded: DEAD. */
export function deadRecord(h: TestHome, name: string, fields: Record<string, unknown> = {}): any {
  return forgeRecord(h, name, { pid: NO_SUCH_PID, starttime: 5, ...fields });
}

type Stat = NonNullable<ReturnType<typeof readStat>>;

/** Live (not zombie) processes, from /proc, for which keep() holds. */
export function processes(keep: (st: Stat) => boolean = () => true): Stat[] {
  const found: Stat[] = [];
  for (const pid of listPids()) {
    const st = readStat(pid);
    if (st && st.state !== 'Z' && keep(st)) found.push(st);
  }
  return found;
}

const pids = (stats: Stat[]) => stats.map((st) => st.pid);
/** Live processes of a process group or session. */
export const groupMembers = (pgid: number) => pids(processes((st) => st.pgrp === pgid || st.session === pgid));
/** Live processes carrying this run's marker (the job and everything it started), not its supervisor. */
export const jobProcs = (rec: any) =>
  pids(processes((st) => st.pid !== rec.sup_pid && environHas(st.pid, `BGMON_JOB_ID=${rec.id}`)));
export const childrenOf = (ppid: number) => pids(processes((st) => st.ppid === ppid));
/** Every live process whose environment says BGMON_HOME=<root>, this runner excepted. */
export const homeProcs = (root: string) =>
  pids(processes((st) => st.pid !== process.pid && environHas(st.pid, `BGMON_HOME=${root}`)));

/** Resident memory of a process in kB; 0 when it is gone. */
export function rssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Signal number n is set in the mask `field` of /proc/<pid>/status (false when the process is gone). */
export const masked = (pid: number, field: string, n: number): boolean => maskHas(signalMasks(pid), field, n);

export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  return st !== null && st.state !== 'Z';
}

/** Waits until none of the processes is alive (a zombie counts as ended). */
export async function untilGone(pidList: number[], what: string, timeoutMs = 10_000): Promise<void> {
  await eventually(
    () => pidList.every((pid) => !isAlive(pid)),
    timeoutMs,
    `${what} to end (pids ${pidList.join(', ')})`,
  );
}

export function lines(text: string): any[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export function fileMode(path: string): number {
  return statSync(path).mode & 0o777;
}

export function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

/** Why a small tmpfs cannot be mounted here (it needs root and CAP_SYS_ADMIN), or null when it can. */
export function tmpfsUnavailable(): string | null {
  const dir = mkdtempSync(join(testTmp(), 'bgmon-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (err) {
    return (
      String((err as { stderr?: Buffer }).stderr ?? (err as Error).message)
        .trim()
        .split('\n')[0] || 'mount failed'
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Runs fn with a tmpfs of `size` (e.g. '512k') mounted in the test's directory and the env of a
 * BGMON_HOME inside it; afterwards every process of that home is killed and the tmpfs unmounted.
 */
export async function withSmallDisk(
  h: TestHome,
  size: string,
  fn: (mnt: string, env: { BGMON_HOME: string }) => Promise<void>,
): Promise<void> {
  const mnt = h.subdir('small');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', mnt], { stdio: 'ignore' });
  const env = { BGMON_HOME: join(mnt, 'home') };
  try {
    await fn(mnt, env);
  } finally {
    await h.killHome(env.BGMON_HOME);
    execFileSync('umount', ['-l', mnt], { stdio: 'ignore' });
  }
}

/** A job that waits until `file` exists (its own cwd's, when relative), then runs `then` in sh. */
export const gatedJob = (file: string, then = 'true'): string[] => [
  'sh',
  '-c',
  `while [ ! -e ${file} ]; do sleep 0.02; done; ${then}`,
];

/**
 * A directory for countingJob: `cur` (how many of its jobs run now), and what they append:
 * `seen` (the count each saw on arrival), `ran` (names, in start order), `ids` (name, pid, and the
 * fields of /proc/PID/stat after the command: state, ppid, pgrp, session...).
 */
export function countingDir(h: TestHome): string {
  const dir = h.subdir('count');
  for (const [file, text] of [
    ['cur', '0\n'],
    ['seen', ''],
    ['ran', ''],
    ['ids', ''],
  ])
    writeFileSync(join(dir, file), text);
  return dir;
}

/**
 * A job that counts how many jobs of the test run at once (under a mkdir lock), notes it in
 * countingDir's files, holds for `holdS`, then counts down.
 */
export function countingJob(dir: string, holdS: number): string[] {
  const take = `while ! mkdir ${dir}/lk 2>/dev/null; do sleep 0.01; done`;
  const add = (d: number) => `${take}; n=$(( $(cat ${dir}/cur) + ${d} )); echo $n > ${dir}/cur`;
  return [
    'sh',
    '-c',
    `${add(1)}; echo $n >> ${dir}/seen; echo "$BGMON_JOB" >> ${dir}/ran; rmdir ${dir}/lk; ` +
      `read -r st < /proc/$$/stat; echo "$BGMON_JOB $$ \${st#*) }" >> ${dir}/ids; ` +
      `sleep ${holdS}; ${add(-1)}; rmdir ${dir}/lk`,
  ];
}

/** NDJSON job specs j0..j(n-1) for `bgmon-start -`, in queue q unless `extra` says otherwise. */
export const queueSpecs = (n: number, cmd: string[], extra: object = {}) =>
  Array.from({ length: n }, (_, i) => JSON.stringify({ name: `j${i}`, cmd, queue: 'q', ...extra })).join('\n') + '\n';

/**
 * Waits until no name lock is left in a home's run/ directory: a job's own fold holds its name's
 * lock a moment after its end is visible; a lock left behind for good fails after 10 s.
 */
export async function untilLocksReleased(home: string): Promise<void> {
  const locks = () => listDir(join(home, 'run')).filter((f) => f.endsWith('.lock'));
  await eventually(
    () => locks().length === 0,
    10_000,
    () => `every lock released: ${locks().join(' ')}`,
  );
}

/** Runs fn with a fresh TestHome that is cleaned up whatever happens. */
export function withHome(fn: (h: TestHome) => Promise<void>): () => Promise<void> {
  return async () => {
    const h = new TestHome();
    try {
      await fn(h);
    } finally {
      await h.cleanup();
    }
    if (h.schemaFailures.length > 0)
      throw new Error(`records not matching docs/record.schema.json:\n${h.schemaFailures.join('\n')}`);
  };
}

/**
 * Waits until a process of this home running `bin` watches files (holds an inotify descriptor):
 * a bgmon-wait or bgmon-tail -f is then following, so what happens next reaches it by file events.
 */
export async function untilWatching(h: TestHome, bin: string, timeoutMs = 20_000): Promise<void> {
  const watching = (pid: number) => {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes(binPath(bin))) return false;
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          return readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:inotify';
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  };
  await eventually(
    () => listPids().some((pid) => environHas(pid, `BGMON_HOME=${h.root}`) && watching(pid)),
    timeoutMs,
    `${bin} to watch`,
  );
}

/** A root-owned job in a home of uid 65534: what that user may name but not signal (EPERM). */
export interface ForeignJob {
  home: string;
  jobPid: number;
  supPid: number;
  /** runs a bgmon binary as uid 65534 against that home */
  runAsNobody(bin: string, args: string[]): Promise<Result>;
}

/** Writes the foreign job's RUNNING record, owned by uid 65534 like the home. */
function writeForeignRecord(home: string, jobPid: number, supPid: number): void {
  const now = new Date().toISOString();
  const rec = {
    v: 1,
    name: 'rootjob',
    id: 'abc-0123',
    status: 'RUNNING',
    cmd: ['sleep', '1000'],
    cwd: '/',
    pid: jobPid,
    created_at: now,
    started_at: now,
    ended_at: null,
    exit_code: null,
    signal: null,
    log: join(home, 'logs', 'rootjob.log'),
    previous_log: null,
    after: [],
    host: 'h',
    boot_id: bootId(),
    starttime: readStat(jobPid)!.starttime,
    sup_pid: supPid,
    sup_starttime: readStat(supPid)!.starttime,
  };
  const file = join(home, 'jobs', 'rootjob.json');
  writeFileSync(file, JSON.stringify(rec) + '\n', { mode: 0o600 });
  chownSync(file, 65534, 65534);
}

/**
 * Runs fn with a job named "rootjob" that uid 65534 cannot signal: a home of that user whose
 * record names a root-owned "supervisor" and its "job" (leading its own session). Both processes
 * are killed by pid and the home removed, whatever fn does. For the EPERM tests (needs root).
 */
export async function withForeignJob(fn: (job: ForeignJob) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(testTmp(), 'bgmon-eperm-'));
  chmodSync(dir, 0o755);
  const home = join(dir, 'home');
  for (const d of ['', 'jobs', 'logs', 'run']) {
    mkdirSync(join(home, d), { recursive: true, mode: 0o700 });
    chownSync(join(home, d), 65534, 65534);
  }
  const sup = spawn('sh', ['-c', 'setsid sleep 1000 & wait', 'sh', home], { detached: true, stdio: 'ignore' });
  let jobPid = 0;
  try {
    const [job] = await eventually(
      () => {
        const found = processes((st) => st.ppid === sup.pid && st.session === st.pid);
        return found.length > 0 && found;
      },
      5000,
      'the root-owned job',
    );
    jobPid = job.pid;
    writeForeignRecord(home, jobPid, sup.pid!);
    const runAsNobody = (bin: string, args: string[]) =>
      spawnCollect(process.execPath, [binPath(bin), ...args], {
        uid: 65534,
        gid: 65534,
        env: { ...process.env, BGMON_HOME: home },
      }).done;
    await fn({ home, jobPid, supPid: sup.pid!, runAsNobody });
  } finally {
    for (const pid of [jobPid, sup.pid!]) {
      try {
        if (pid > 1) process.kill(pid, 'SIGKILL');
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
