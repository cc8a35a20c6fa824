import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import Ajv from 'ajv';
import { environHas, listPids, readStat } from 'bgmon-state';

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

const validateRecord = new Ajv({ allErrors: true }).compile(JSON.parse(readFileSync(join(resolve(__dirname, '..'), 'docs', 'record.schema.json'), 'utf8')));

/** Every record a bgmon command prints or leaves on disk must match docs/record.schema.json. */
export function schemaProblems(record: unknown): string | null {
  return validateRecord(record) ? null : JSON.stringify(validateRecord.errors);
}

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

  private checkSchema(text: string, where: string): void {
    for (const line of text.split('\n')) {
      if (!line.startsWith('{"v":')) continue;
      let rec: any;
      try {
        rec = JSON.parse(line);
      } catch {
        continue;
      }
      if (this.handWritten.has(rec.name)) continue;
      this.checkedRecords++;
      const problem = schemaProblems(rec);
      if (problem) this.schemaFailures.push(`${where}: ${problem}: ${line}`);
    }
  }

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'bgmon-test-'));
    this.root = join(this.dir, 'home');
  }

  get env(): Record<string, string> {
    return { ...(process.env as Record<string, string>), BGMON_HOME: this.root };
  }

  /** Runs a bgmon binary (or any command when `bin` is a path) and collects its output. */
  run(bin: string, args: string[] = [], opts: RunOptions = {}): Promise<Result> {
    const started = Date.now();
    const command = bin.includes('/') ? bin : process.execPath;
    const argv = bin.includes('/') ? args : [binPath(bin), ...args];
    const child = spawn(command, argv, { env: { ...this.env, ...opts.env }, cwd: opts.cwd ?? this.dir, stdio: ['pipe', 'pipe', 'pipe'] });
    this.outside.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr += c));
    child.stdin!.on('error', () => {});
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else if (!opts.openStdin) child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    return new Promise((done) =>
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        if (opts.openStdin) child.stdin!.destroy();
        if (/^bgmon(-(start|status|stop|signal|wait|rm))?$/.test(bin)) this.checkSchema(stdout, `${bin} ${args.join(' ')}`);
        done({ code, signal, stdout, stderr, ms: Date.now() - started });
      }),
    );
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

  writeRecord(name: string, record: object): void {
    this.handWritten.add(name);
    writeFileSync(join(this.root, 'jobs', `${name}.json`), JSON.stringify(record) + '\n', { mode: 0o600 });
  }

  /** Starts a process outside bgmon; it is killed by pid in cleanup(). */
  spawnOutside(cmd: string, args: string[], opts: { detached?: boolean } = {}): ChildProcess {
    const child = spawn(cmd, args, { stdio: 'ignore', detached: opts.detached, env: this.env });
    this.outside.push(child);
    return child;
  }

  /** Ends, by pid, every process whose environment says BGMON_HOME=<root>. */
  async killHome(root: string): Promise<void> {
    for (let round = 0; round < 3; round++) {
      for (const pid of listPids()) {
        if (pid !== process.pid && environHas(pid, `BGMON_HOME=${root}`)) {
          try {
            process.kill(pid, 'SIGCONT');
            process.kill(pid, 'SIGKILL');
          } catch {}
        }
      }
      await sleep(20);
    }
  }

  /** Ends every process of this home (by pid: jobs, their groups, supervisors) and removes it. */
  async cleanup(): Promise<void> {
    for (const child of this.outside) {
      if (child.exitCode === null && child.signalCode === null && child.pid) {
        try {
          process.kill(child.pid, 'SIGCONT');
          process.kill(child.pid, 'SIGKILL');
        } catch {}
      }
    }
    // Everything bgmon started here carries BGMON_HOME=<this home> in its environment.
    await this.killHome(this.root);
    try {
      chmodSync(this.root, 0o700);
    } catch {}
    for (const file of listDir(join(this.root, 'jobs'))) {
      if (!file.endsWith('.json') || file.startsWith('.')) continue;
      try {
        this.checkSchema(readFileSync(join(this.root, 'jobs', file), 'utf8'), `jobs/${file}`);
      } catch {}
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until fn returns a truthy value; throws after timeoutMs. */
export async function eventually<T>(fn: () => T | Promise<T>, timeoutMs = 10_000, what = 'condition'): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as Exclude<T, false | null | undefined | 0 | ''>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function isAlive(pid: number): boolean {
  const st = readStat(pid);
  return st !== null && st.state !== 'Z';
}

export function lines(text: string): any[] {
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

export function fileMode(path: string): number {
  return require('node:fs').statSync(path).mode & 0o777;
}

export function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
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
    if (h.schemaFailures.length > 0) throw new Error(`records not matching docs/record.schema.json:\n${h.schemaFailures.join('\n')}`);
  };
}
