import { closeSync, constants, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { createFreshFile, readEnd } from './end';
import { readOwnFile, unlinkQuietly, writeFileAtomic } from './fsutil';
import { resolveExecutable } from './exec';
import { shellQuote } from './output';
import { recordPath, type Home } from './paths';
import { environHas, isSameProcess, listPids } from './proc';
import { isTerminal, readRecord, readRecordFile, type JobRecord } from './record';
import { sleepSync } from './sleep';
import { isRunDirOf, readStart, runDir, runsDir } from './start-file';

/*
 * The queue's hand-off (supervisor.sh): a plain run of a queue (no --after, --in/--at, --retry,
 * --on-end) is prepared when it is queued, so that the supervisor of a job of that queue that
 * ends can start it with no Node process. Each prepared run has a directory of its own that Node
 * creates 0700 and fills before renaming it into place, run/queues/<Q>.runs/<SEQ>/:
 *   script  quoted data: the run's name, id, paths, cwd, umask, and `job` (its env -i and argv)
 *   id.<ID>  empty: the run this directory is for (its job checks it before anything else)
 *   log, end  the run's log and end file, created here exclusively by Node; once the run is
 *           started they are renamed to logs/<name>.log and jobs/.<name>@<id>.end (rename never
 *           writes through what sits at the destination), so no shell opens a path of the home
 *           that someone else could have planted a link or a FIFO at
 *   claim   created exclusively: "SLOT PID STARTTIME" by a supervisor, "node" by Node; whoever
 *           creates it first owns the run
 *   start   created exclusively: "PID STARTTIME BOOT_ID UPTIME_CS SUP_PID SUP_STARTTIME" by the
 *           job before its command runs, or "none" by Node (bgmon-stop, Node starting the run
 *           itself, a reader voiding a dead supervisor's claim); whoever creates it first decides
 * Nothing ever removes a claim or start file of a run directory that is still in place: a run
 * directory is only renamed away whole (then deleted), and only below the queue's frontier (no
 * unfinished run of the queue has a smaller SEQ), so no late supervisor or job can act on it.
 * A supervisor walks SEQ+1, SEQ+2... from the last run it ran; a missing directory ends the
 * hand-off (Node decides from there). run/<name>@<id>.waited: a queued job waits for that run,
 * whose end therefore goes through Node. run/queues/<Q>.slots: the limit, for supervisors.
 */

export const slotsPath = (home: Home, queue: string) => join(home.run, 'queues', `${queue}.slots`);
export const waitedPath = (home: Home, name: string, id: string) => join(home.run, `${name}@${id}.waited`);

/** A run the hand-off may start: one of a queue that waits for nothing but a slot and needs no Node at its end. */
export const canHandOff = (rec: JobRecord): boolean =>
  rec.queue != null &&
  Number.isSafeInteger(rec.queue_seq) &&
  rec.after.length === 0 &&
  !rec.not_before &&
  !rec.retry &&
  rec.on_end == null;

const TOOL_PATH = '/usr/bin:/bin';
// the launch script's words go into one exec's argv: well under the kernel's smallest limit
const MAX_SCRIPT = 64 * 1024;
// setsid(2)'s number, for perl's syscall (POSIX.pm alone costs perl 10 ms to load); other
// architectures take the shell's way
const SETSID: Record<string, number> = { x64: 112, ia32: 66, arm: 66, ppc64: 66, s390x: 66, arm64: 157, riscv64: 157 };
// what perl reads from its environment at start-up (it runs with the supervisor's): none may change what it does
const PERL_VARS =
  'PERL5OPT PERL5LIB PERLLIB PERL5DB PERL_UNICODE PERLIO PERLIO_DEBUG PERL_HASH_SEED PERL_PERTURB_KEYS ' +
  'PERL_HASH_SEED_DEBUG PERL_DESTRUCT_LEVEL PERL_DEBUG_MSTATS PERL_MEM_LOG PERL_SIGNALS PERL_USE_UNSAFE_INC ' +
  'PERL_DL_NONLAZY PERL_BADLANG PERL_SKIP_LOCALE_INIT PERL_RAND_SEED PERL_ENCODING';

interface Tools {
  mv: string;
  env: string;
  /** perl, with setsid(2)'s number here: the job's chain is one exec (null: setsid, env, sh and mv) */
  perl: { path: string; setsid: number } | null;
}

/**
 * `job`, called by the supervisor with hand_sh and its words: the job's chain, in the job's
 * environment from its first exec on (bgmon-stop knows the job by its marker).
 */
function jobFunction(rec: JobRecord, pairs: Array<[string, string]>, tools: Tools): string {
  const cmd = rec.cmd.map(shellQuote).join(' ');
  const wordsOf = (list: Array<[string, string]>) => list.map(([k, v]) => shellQuote(`${k}=${v}`)).join(' ');
  if (tools.perl) {
    // what /bin/sh exports: it drops the names it cannot hold
    const shellPairs = pairs.filter(([k]) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(k));
    const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
    const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
    const args = `${tools.perl.setsid} ${flags} ${shellPairs.length} ${wordsOf(shellPairs)} ${cmd}`;
    // perl carries the run's markers from its exec on: it creates the start file (bgmon-stop may
    // then look at it) before it execs the command with the job's own environment
    const marks = `BGMON_JOB_ID=${shellQuote(rec.id)} BGMON_JOB=${shellQuote(rec.name)}`;
    return (
      `job() {\n  shift 2\n  unset ${PERL_VARS}\n  ${marks} LC_ALL=C\n` +
      `  export BGMON_JOB_ID BGMON_JOB LC_ALL\n  exec ${shellQuote(tools.perl.path)} -e "$hand_pl" -- "$@" ${args}\n}\n`
    );
  }
  // sh ignores INT and QUIT in background children: env gives the command the defaults back
  const env = [tools.env, '-i', '--default-signal=INT,QUIT', '--'].map(shellQuote).join(' ');
  return `job() {\n  exec setsid -- ${env} ${wordsOf(pairs)} /bin/sh -c "$@" ${cmd}\n}\n`;
}

/** The launch script: data only, every value single-quoted; `job` is called with the supervisor's words. */
function launchScript(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv, tools: Tools): string | null {
  const { BGMON_JOB_ID: _marker, ...own } = env;
  const pairs = Object.entries({ ...own, BGMON_JOB_ID: rec.id }).filter((p): p is [string, string] => p[1] != null);
  // env -i takes NAME=VALUE words until the command: a name it cannot take, or a command word
  // that looks like one, is left to Node
  if (pairs.some(([k]) => k === '' || k.includes('=')) || rec.cmd[0].includes('=')) return null;
  const vars: Array<[string, string]> = [
    ['n_name', rec.name],
    ['n_id', rec.id],
    ['n_log', rec.log],
    ['n_end', join(home.jobs, `.${rec.name}@${rec.id}.end`)],
    ['n_cwd', rec.cwd],
    ['n_mask', process.umask().toString(8).padStart(4, '0')],
    ['n_mv', tools.mv],
    ['n_perl', tools.perl ? '1' : ''],
  ];
  const text = `${vars.map(([k, v]) => `${k}=${shellQuote(v)}`).join(' ')}\n${jobFunction(rec, pairs, tools)}`;
  return text.length > MAX_SCRIPT ? null : text;
}

function mkdirs(...dirs: string[]): void {
  for (const dir of dirs) {
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

function createWith(path: string, text: string | Buffer): void {
  const fd = createFreshFile(path, constants.O_WRONLY);
  try {
    writeSync(fd, typeof text === 'string' ? Buffer.from(text) : text);
  } finally {
    closeSync(fd);
  }
}

let toolPaths: Tools | null | undefined;
/**
 * mv, env and perl, by absolute path: the job's chain runs them whatever the job's PATH (null: no
 * mv or env). BGMON_NO_PERL=1 in bgmon-start's environment takes the shell's way even with perl.
 */
function handOffTools(): Tools | null {
  if (toolPaths !== undefined) return toolPaths;
  const find = (tool: string) => {
    try {
      return resolveExecutable(tool, TOOL_PATH, '/');
    } catch {
      return null;
    }
  };
  const [mv, env, perl] = ['mv', 'env', 'perl'].map(find);
  const setsid = SETSID[process.arch];
  const usePerl = perl !== null && setsid !== undefined && process.env.BGMON_NO_PERL !== '1';
  toolPaths = mv && env ? { mv, env, perl: usePerl ? { path: perl, setsid } : null } : null;
  return toolPaths;
}

/**
 * Prepares a queued run for the hand-off (its record and queue entry are on disk already): its
 * run directory is filled under a temporary name and renamed into place whole. False when the
 * run is not one the hand-off starts or cannot be prepared: Node alone starts it then.
 */
export function prepareHandOff(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): boolean {
  if (!canHandOff(rec)) return false;
  const tools = handOffTools();
  if (!tools) return false;
  const script = launchScript(home, rec, env, tools);
  if (script === null) return false;
  const runs = runsDir(home.root, rec.queue!);
  const tmp = join(runs, `.new.${rec.queue_seq}.${process.pid}`);
  try {
    rmSync(tmp, { recursive: true, force: true });
    // the queue's directories are made once: a failed mkdir still locks its parent, and a batch
    // of 1,000 runs would try them 2,000 times
    try {
      mkdirSync(tmp, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirs(join(home.run, 'queues'), runs);
      mkdirSync(tmp, { mode: 0o700 });
    }
    createWith(join(tmp, 'log'), '');
    // room for the end as the supervisor overwrites it in place (see end.ts)
    createWith(join(tmp, 'end'), Buffer.alloc(32, 32));
    createWith(join(tmp, 'script'), script);
    // the job's shell checks that the directory is its run's (a SEQ reused after a lost queue file)
    createWith(join(tmp, `id.${rec.id}`), '');
    renameSync(tmp, runDir(home.root, rec.queue!, rec.queue_seq!));
    return true;
  } catch {
    rmSync(tmp, { recursive: true, force: true });
    return false;
  }
}

/** Tells the supervisor of a run that a queued job waits for it: its end goes through Node. */
export function markWaited(home: Home, name: string, id: string): void {
  try {
    closeSync(openSync(waitedPath(home, name, id), 'wx', 0o600));
  } catch {}
}

/** The queue's limit as a plain number, for supervisors (who parse no JSON). */
export function writeSlotsFile(home: Home, queue: string, slots: number): void {
  writeFileAtomic(slotsPath(home, queue), `${slots}\n`);
}

/** Creates a file exclusively (never through a link) holding text; false when something is there. */
function createExclusive(path: string, text: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' || code === 'ENOENT') return false;
    throw err;
  }
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return true;
}

export type Claim = 'node' | { slot: number; pid: number; starttime: number; boot: string } | null;

/** Who took a run: Node, a supervisor "SLOT PID STARTTIME BOOT_ID", or nobody yet (null; also while being written). */
export function readClaim(dir: string): Claim {
  let text = '';
  try {
    text = readOwnFile(join(dir, 'claim'));
  } catch {}
  if (text === 'node\n') return 'node';
  const m = /^(\d{1,9}) (\d{1,9}) (\d{1,20}) ([0-9a-f-]{36})\n$/.exec(text);
  return m ? { slot: Number(m[1]), pid: Number(m[2]), starttime: Number(m[3]), boot: m[4] } : null;
}

const PARTIAL_WAIT_MS = 2000;

/**
 * The run's start, with a partial one settled: only the job's shell (carrying the run's marker),
 * a supervisor or Node writing "none" ever write it, so a partial start with no process of the
 * run alive (its writer died, or its write failed: a full disk) never completes and the run never
 * ran: 'none'. Read again after the look at /proc: the writer may have just finished and exited.
 */
function settledStart(dir: string, idOf: () => string | null | undefined): ReturnType<typeof readStart> {
  const s = readStart(dir);
  if (s !== 'partial') return s;
  const id = idOf();
  if (!id || listPids().some((pid) => environHas(pid, `BGMON_JOB_ID=${id}`))) return s;
  const again = readStart(dir);
  return again === 'partial' ? 'none' : again;
}

/**
 * Makes sure the hand-off never starts this QUEUED run (the caller holds its name's lock and is
 * about to start or stop it itself): Node claims it first, or, when a supervisor took it,
 * creates its start file as "none" first. 'started' when the job got there first: it runs.
 */
export function preempt(home: Home, rec: JobRecord): 'never' | 'started' {
  if (!canHandOff(rec)) return 'never';
  const dir = runDir(home.root, rec.queue!, rec.queue_seq!);
  // not prepared for this run (an earlier run's at a reused SEQ, or dropped): no job starts it
  // there (the job's shell checks the same id file, which only goes once Node has decided)
  if (!isRunDirOf(dir, rec.id)) return 'never';
  if (createExclusive(join(dir, 'claim'), 'node\n') || readClaim(dir) === 'node') return 'never';
  const deadline = Date.now() + PARTIAL_WAIT_MS;
  for (;;) {
    if (createExclusive(join(dir, 'start'), 'none\n')) return 'never';
    const s = settledStart(dir, () => rec.id);
    if (s === 'none' || s === null) return 'never';
    if (s !== 'partial' || Date.now() > deadline) return 'started';
    sleepSync(5); // the job is writing its line
  }
}

/**
 * Claims for Node, all at once, the runs an advance is about to launch itself, before it launches
 * the first: while Node launched them one by one, the supervisors of the first (quick) jobs
 * claimed the next ones, and each claim Node then voided sent that supervisor to Node (a fold
 * and a queue pass, ~100 ms of CPU; up to 35 in a 1,000-job batch). A run claimed here is one
 * Node starts (preempt finds its claim); nothing else changes.
 */
export function claimForNode(home: Home, recs: JobRecord[]): void {
  for (const rec of recs) {
    const dir = runDir(home.root, rec.queue!, rec.queue_seq!);
    if (canHandOff(rec) && isRunDirOf(dir, rec.id)) createExclusive(join(dir, 'claim'), 'node\n');
  }
}

/** The run a directory prepared, from its script's first line (null once Node dropped it). */
function runOf(dir: string): { name: string; id: string } | null {
  let head = '';
  try {
    head = readOwnFile(join(dir, 'script')).slice(0, 400);
  } catch {}
  const m = /^n_name='([^']+)' n_id='([^']+)'/.exec(head);
  return m ? { name: m[1], id: m[2] } : null;
}

/** Whether the run's end is written: in its end file, or folded into its record (or history). */
function endWritten(home: Home, run: { name: string; id: string }): boolean {
  if (readEnd(home, run.name, run.id)) return true;
  try {
    const disk = readRecord(home, run.name);
    return !disk || disk.id !== run.id || isTerminal(disk.status);
  } catch {
    return false;
  }
}

/**
 * Whether a supervisor's claimed run holds its slot: until its supervisor has written its end
 * (the supervisor claims its next run before that write) or, with the supervisor gone, while the
 * job runs. A claim whose job never started holds while its claimer lives; a dead claimer's is
 * voided ("none"), so that Node starts the run.
 */
function claimHolds(home: Home, dir: string, c: { pid: number; starttime: number; boot: string }): boolean {
  const claimerAlive = () => isSameProcess(c.pid, c.starttime, c.boot);
  for (;;) {
    const s = settledStart(dir, () => runOf(dir)?.id);
    if (s === 'none') return false;
    if (s === 'partial') return true;
    if (s !== null) {
      if (isSameProcess(s.pid, s.starttime, s.bootId)) return true;
      const run = runOf(dir);
      return claimerAlive() && (run === null || !endWritten(home, run));
    }
    if (claimerAlive()) return true;
    if (createExclusive(join(dir, 'start'), 'none\n')) return false;
  }
}

/** A run directory in place: its SEQ and who claimed it. */
export interface HandedOff {
  seq: number;
  dir: string;
  claim: Claim;
}

export function listRuns(home: Home, queue: string): HandedOff[] {
  return runDirs(home, queue).map((run) => ({ ...run, claim: readClaim(run.dir) }));
}

/** The run directories in place, in SEQ order. */
function runDirs(home: Home, queue: string): Array<{ seq: number; dir: string }> {
  let names: string[];
  try {
    names = readdirSync(runsDir(home.root, queue));
  } catch {
    return [];
  }
  return names
    .filter((n) => /^\d{1,15}$/.test(n))
    .map((n) => ({ seq: Number(n), dir: join(runsDir(home.root, queue), n) }))
    .sort((a, b) => a.seq - b.seq);
}

/**
 * The supervisors holding a slot of the queue through the hand-off, by "PID STARTTIME", with
 * their slot and the SEQ of the run they hold. `between` runs after the first look and before
 * the second: a supervisor claims its next run before it writes the end of the one before, so a
 * run whose end `between` (or the first look) found written has had its successor's claim made
 * already, and the second look finds it.
 */
export function handOffHolders(home: Home, queue: string, between: () => void): Map<string, Holder> {
  const holders = new Map<string, Holder>();
  const seen = new Set<number>();
  // A supervisor only moves on to higher SEQs, and claims its next run before it writes the end
  // of the last: looked at in SEQ order, each claim read when its run is looked at (not when the
  // directory was listed), a supervisor that moves on during the look is met again further on.
  // In listing order, with the claims read up front, one that hopped twice during a look on a
  // loaded machine was missed, and Node started a fifth run in a queue of 4.
  const look = () => {
    for (const run of runDirs(home, queue)) {
      if (seen.has(run.seq)) continue;
      const c = readClaim(run.dir);
      if (c === null || c === 'node') continue;
      seen.add(run.seq);
      if (claimHolds(home, run.dir, c)) holders.set(`${c.pid} ${c.starttime}`, { slot: c.slot, seq: run.seq });
    }
  };
  look();
  between();
  look();
  return holders;
}

export interface Holder {
  slot: number;
  seq: number;
}

/**
 * Removes the run directories of the queue below `frontier` (no run of the queue that still
 * holds a slot or waits has a smaller SEQ) once nobody reads them: a run started by the hand-off
 * keeps its directory (its start) until its end is folded into its record. Each is renamed away
 * whole first, so nothing in it can be acted on once it is no longer in place.
 */
export function pruneRuns(home: Home, queue: string, frontier: number): void {
  for (const run of listRuns(home, queue)) {
    if (run.seq >= frontier || !isDecided(home, run)) continue;
    const gone = join(runsDir(home.root, queue), `.gone.${run.seq}.${process.pid}`);
    try {
      renameSync(run.dir, gone);
      rmSync(gone, { recursive: true, force: true });
    } catch {}
  }
}

/**
 * Whether nothing can start the run any more and no reader needs its directory: Node claimed
 * it, or it was voided, or it ran and its record says how it ended (or was replaced).
 */
function isDecided(home: Home, run: HandedOff): boolean {
  if (run.claim === 'node') return true;
  if (run.claim === null) return false;
  const started = settledStart(run.dir, () => runOf(run.dir)?.id);
  if (started === 'none') return true;
  const who = runOf(run.dir);
  return typeof started === 'object' && started !== null && who !== null && isFolded(home, who);
}

/** The run's record file no longer needs its start: it says how the run ended, or it was replaced. */
function isFolded(home: Home, run: { name: string; id: string }): boolean {
  try {
    const disk = readRecordFile(recordPath(home, run.name), run.name, false);
    return !disk || disk.id !== run.id || isTerminal(disk.status);
  } catch {
    return false;
  }
}

/** The prepared log and end of a run Node starts or ends itself: no longer needed. */
export function dropPrepared(home: Home, rec: JobRecord): void {
  if (!canHandOff(rec)) return;
  const dir = runDir(home.root, rec.queue!, rec.queue_seq!);
  // an earlier run's directory at a reused SEQ keeps its files (its script names its run)
  if (!isRunDirOf(dir, rec.id)) return;
  for (const f of ['log', 'end', 'script', `id.${rec.id}`]) unlinkQuietly(join(dir, f));
}
