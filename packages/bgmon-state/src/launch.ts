import type { ChildProcess } from 'node:child_process';
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { StateError } from './errors';
import { recordPath, sparePath, stopMarkerPath, type Home } from './paths';
import { bootId, readStat } from './proc';
import { hashHex } from './random';
import { nowIso, writeRecord, type JobRecord } from './record';
import { SUPERVISOR_SH } from './supervisor';

function supervisorScript(home: Home): string {
  const file = join(home.run, `supervisor-${hashHex(SUPERVISOR_SH)}.sh`);
  if (!existsSync(file)) {
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, SUPERVISOR_SH, { mode: 0o600 });
    renameSync(tmp, file);
  }
  return file;
}

function readPidLine(child: ChildProcess): Promise<number> {
  return new Promise((resolvePid, reject) => {
    let text = '';
    const fail = () => reject(new StateError('the supervisor could not start the job'));
    child.once('error', (err) => reject(new StateError(`cannot start the supervisor: ${err.message}`)));
    child.once('exit', fail);
    child.stdout!.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const nl = text.indexOf('\n');
      if (nl < 0) return;
      child.removeListener('exit', fail);
      const pid = Number(text.slice(0, nl));
      if (Number.isSafeInteger(pid) && pid > 0) resolvePid(pid);
      else fail();
    });
  });
}

/**
 * Spawns the supervisor and the job, writes the RUNNING record, then lets the job run.
 * The caller holds the name's lock.
 */
export async function launch(home: Home, rec: JobRecord, env: NodeJS.ProcessEnv): Promise<JobRecord> {
  writeFileSync(rec.log, '', { mode: 0o600, flag: 'w' });
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const child = spawn(
    '/bin/sh',
    [supervisorScript(home), recordPath(home, rec.name), sparePath(home, rec.name), rec.log, stopMarkerPath(home, rec.name), rec.id, home.run, process.execPath, advanceEntry(), ...rec.cmd],
    { cwd: rec.cwd, env, detached: true, stdio: ['ignore', 'pipe', 'ignore', 'pipe'] },
  );
  const gate = child.stdio[3] as NodeJS.WritableStream;
  try {
    const pid = await readPidLine(child);
    const job = readStat(pid);
    const sup = readStat(child.pid!);
    if (!job || !sup) throw new StateError('the job vanished before it started');
    const running: JobRecord = {
      ...rec, status: 'RUNNING', pid, started_at: nowIso(), boot_id: bootId(), starttime: job.starttime,
      sup_pid: child.pid!, sup_starttime: sup.starttime,
    };
    const text = JSON.stringify(running);
    // Room for the final record, reserved now so the end can be written even on a full disk.
    writeFileSync(sparePath(home, rec.name), Buffer.alloc(Buffer.byteLength(text) + 4096, 32), { mode: 0o600 });
    writeRecord(home, running);
    await new Promise<void>((done) => gate.end('go\n', done));
    return running;
  } finally {
    // Without "go" the job's process exits without running the command.
    child.stdout!.destroy();
    (gate as unknown as { destroy(): void }).destroy();
    child.unref();
  }
}

/** The script a supervisor runs to advance the queue: this very binary, with --advance-queue. */
function advanceEntry(): string {
  return resolve(process.argv[1] ?? '');
}
