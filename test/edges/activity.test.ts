// log_bytes and last_output_at over many records: read from each log as it is now, whether the
// log is there, missing, a link, elsewhere or has grown; and the printed line is the record's own
// line with the two fields appended, byte for byte.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, lstatSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lines, untilOnDisk, withHome, type TestHome } from '../helpers';

/**
 * What status must say of a log: lstat'ed now, nulls unless it is a regular file; its mtime, or
 * the run's start when that is later (the kernel's file clock runs a few ms behind).
 */
function expectedActivity(
  log: string,
  startedAt?: string,
): { log_bytes: number | null; last_output_at: string | null } {
  const st = lstatSync(log, { throwIfNoEntry: false });
  if (!st?.isFile()) return { log_bytes: null, last_output_at: null };
  const mtime = new Date(st.mtimeMs).toISOString();
  const at = startedAt !== undefined && startedAt > mtime ? startedAt : mtime;
  return { log_bytes: st.size, last_output_at: st.size === 0 ? null : at };
}

/** A finished record of bgmon's own, copied under new names the way bgmon writes records (one line). */
async function finishedTemplate(h: TestHome): Promise<any> {
  await h.start('tmpl', ['true']);
  // the record as folded on disk (copies of an unfolded one would say RUNNING for a gone pid)
  return untilOnDisk(h, 'tmpl', 'SUCCEEDED');
}

function writeCopy(h: TestHome, template: any, name: string, i: number, log: string): void {
  const created = new Date(Date.parse(template.created_at) + 1000 + i).toISOString();
  const rec = { ...template, name, id: `${template.id}-${i}`, created_at: created, log };
  writeFileSync(join(h.root, 'jobs', `${name}.json`), JSON.stringify(rec) + '\n', { mode: 0o600 });
}

/** Runs bgmon-status --json and checks every line: the file's own line, the log's activity appended. */
async function assertExactLines(h: TestHome, names: string[], round: string): Promise<void> {
  const r = await h.run('bgmon-status', ['--json']);
  assert.is(r.code, 0, r.stderr);
  const printed = r.stdout.split('\n').slice(0, -1);
  assert.equal(
    lines(r.stdout).map((x) => x.name),
    ['tmpl', ...names],
    `${round}: every record, oldest first`,
  );
  for (const [i, name] of ['tmpl', ...names].entries()) {
    const text = readFileSync(join(h.root, 'jobs', `${name}.json`), 'utf8');
    const rec = JSON.parse(text);
    const act = expectedActivity(rec.log, rec.started_at);
    const fields = `"log_bytes":${act.log_bytes},"last_output_at":${JSON.stringify(act.last_output_at)}`;
    const want = `${text.slice(0, -2)},${fields}}`;
    assert.is(printed[i], want, `${round}: ${name}`);
  }
}

test(
  'status over many records: each log read as it is now (missing, present, empty, a link, elsewhere, grown)',
  withHome(async (h) => {
    const template = await finishedTemplate(h);
    const logs = join(h.root, 'logs');
    const elsewhere = join(h.dir, 'elsewhere');
    mkdirSync(join(logs, 'sub'), { recursive: true });
    mkdirSync(elsewhere);
    writeFileSync(join(h.dir, 'outside.log'), 'not this job\n');
    // oldest first: 100 records whose logs are gone, then every kind of log, more than once
    const kinds = ['missing', 'present', 'empty', 'symlink', 'dir', 'elsewhere', 'subdir', 'later'];
    const names: string[] = [];
    for (let i = 0; i < 100 + kinds.length * 8; i++) {
      const kind = i < 100 ? 'missing' : kinds[i % kinds.length];
      const name = `r${String(i).padStart(3, '0')}-${kind}`;
      const log =
        kind === 'elsewhere'
          ? join(elsewhere, `${name}.log`)
          : join(logs, kind === 'subdir' ? 'sub' : '', `${name}.log`);
      if (kind === 'present' || kind === 'elsewhere' || kind === 'subdir') writeFileSync(log, 'x'.repeat(i) + '\n');
      if (kind === 'empty') writeFileSync(log, '');
      if (kind === 'symlink') symlinkSync(join(h.dir, 'outside.log'), log);
      if (kind === 'dir') mkdirSync(log);
      writeCopy(h, template, name, i, log);
      names.push(name);
    }
    await assertExactLines(h, names, 'first look');

    // the logs change: each is read again, nothing is remembered from the first look
    for (const [i, name] of names.entries()) {
      const log = JSON.parse(readFileSync(join(h.root, 'jobs', `${name}.json`), 'utf8')).log;
      if (name.endsWith('-later') || (name.endsWith('-missing') && i % 7 === 0)) writeFileSync(log, 'now here\n');
      if (name.endsWith('-present') && i % 2 === 0) appendFileSync(log, 'grown\n'.repeat(i));
      if (name.endsWith('-present') && i % 2 === 1) unlinkSync(log);
      if (name.endsWith('-empty')) appendFileSync(log, 'first output\n');
    }
    await assertExactLines(h, names, 'second look');
  }),
);

test(
  'a record carrying log_bytes or last_output_at of its own, or whose line ends in a space, prints its log as it is',
  withHome(async (h) => {
    const template = await finishedTemplate(h);
    const logs = join(h.root, 'logs');
    const stale = { ...template, name: 'stale', log: join(logs, 'stale.log'), log_bytes: 5 };
    h.writeRecord('stale', { ...stale, last_output_at: '2020-01-01T00:00:00.000Z' });
    h.writeRecord('spaced', { ...template, name: 'spaced', log: join(logs, 'spaced.log') });
    const spacedFile = join(h.root, 'jobs', 'spaced.json');
    writeFileSync(spacedFile, readFileSync(spacedFile, 'utf8').replace(/\n$/, ' \n'));
    writeFileSync(join(logs, 'spaced.log'), 'four');
    const r = await h.run('bgmon-status', ['stale', 'spaced', '--json']);
    assert.is(r.code, 0, r.stderr);
    const [spaced, staleOut] = lines(r.stdout).sort((a, b) => (a.name < b.name ? -1 : 1));
    assert.equal([staleOut.log_bytes, staleOut.last_output_at], [null, null], 'no log: nulls, not the stored 5');
    assert.equal(
      [spaced.log_bytes, spaced.last_output_at],
      [4, expectedActivity(join(logs, 'spaced.log')).last_output_at],
      'the fields are there for a line ending in a space too',
    );
    for (const line of r.stdout.split('\n').slice(0, -1)) assert.is(line.match(/"log_bytes"/g)?.length, 1, line);
  }),
);

test(
  'past runs (--history, NAME@ID) carry the activity of their kept log, read now; nulls once it is gone',
  withHome(async (h) => {
    await h.start('a', ['sh', '-c', 'printf "first run\\n"']);
    const first = await untilOnDisk(h, 'a', 'SUCCEEDED');
    await h.start('a', ['sh', '-c', 'printf "second\\n"']);
    const second = await untilOnDisk(h, 'a', (x) => x.status === 'SUCCEEDED' && x.id !== first.id);
    const kept = join(h.root, 'logs', `a@${first.id}.log`);
    assert.is(readFileSync(kept, 'utf8'), 'first run\n');
    const exact = (rec: any, log: string) => ({ name: rec.name, id: rec.id, ...expectedActivity(log, rec.started_at) });
    const shown = (x: any) => ({ name: x.name, id: x.id, log_bytes: x.log_bytes, last_output_at: x.last_output_at });
    const history = await h.run('bgmon-status', ['--history', 'a', '--json']);
    assert.is(history.code, 0, history.stderr);
    assert.equal(lines(history.stdout).map(shown), [exact(first, kept), exact(second, second.log)]);
    assert.is(lines(history.stdout)[0].log_bytes, 10);
    const one = await h.run('bgmon-status', [`a@${first.id}`, '--json']);
    assert.equal(lines(one.stdout).map(shown), [exact(first, kept)], one.stderr);
    for (const line of history.stdout.split('\n').slice(0, -1)) assert.is(line.match(/"log_bytes"/g)?.length, 1, line);
    unlinkSync(kept);
    const gone = await h.run('bgmon-status', [`a@${first.id}`, '--json']);
    assert.equal(lines(gone.stdout).map(shown), [{ name: 'a', id: first.id, log_bytes: null, last_output_at: null }]);
  }),
);

test.run();
