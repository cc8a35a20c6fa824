// Several hosts (issue 12, section 7): each "host" is this checkout's bgmon under its own
// BGMON_HOME, reached through test/fixtures/fake-ssh, which runs the remote command line as ssh
// would (words joined, through sh -c). The host `down` is unreachable; `bare` has no bgmon.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  binPath,
  isAlive,
  lines,
  ROOT,
  slowTest,
  withHome,
  type Result,
  type RunOptions,
  type TestHome,
} from '../helpers';

const FAKE_SSH = join(ROOT, 'test', 'fixtures', 'fake-ssh');
const HOSTS = ['a', 'b', 'slow1'];

const hostsDir = (h: TestHome) => join(h.dir, 'hosts');
const hostHome = (h: TestHome, host: string) => join(hostsDir(h), host);

/** The environment that sends --host through the fake transport (with an option, as users would). */
const fakeEnv = (h: TestHome, extra: Record<string, string> = {}) => ({
  FAKE_HOSTS_DIR: hostsDir(h),
  BGMON_SSH: `${FAKE_SSH} -o BatchMode=yes`,
  BGMON_HOSTS: '',
  ...extra,
});

function onHosts(h: TestHome, bin: string, args: string[], opts: RunOptions = {}): Promise<Result> {
  return h.run(bin, args, { timeoutMs: 60_000, ...opts, env: { ...fakeEnv(h), ...opts.env } });
}

/** Starts a job on one fake host; returns its record. */
async function startOn(h: TestHome, host: string, name: string, script: string): Promise<any> {
  const r = await h.run('bgmon-start', ['--name', name, '--', 'sh', '-c', script], {
    env: { BGMON_HOME: hostHome(h, host) },
  });
  if (r.code !== 0) throw new Error(`start ${name} on ${host}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** withHome, plus ending every process of every fake host. */
const withHosts = (fn: (h: TestHome) => Promise<void>) =>
  withHome(async (h) => {
    try {
      await fn(h);
    } finally {
      for (const host of HOSTS) await h.killHome(hostHome(h, host));
    }
  });

const DOWN_LINE = 'host down: ssh: connect to host down port 22: Connection refused';

test(
  "status --host a,b: both hosts' records, each with host set to the name as given",
  withHosts(async (h) => {
    const ra = await startOn(h, 'a', 'j', 'sleep 60');
    const rb = await startOn(h, 'b', 'j', 'exit 0');
    const r = await onHosts(h, 'bgmon-status', ['--host', 'a,b', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const recs = lines(r.stdout).sort((x, y) => (x.host < y.host ? -1 : 1));
    assert.equal(
      recs.map((x) => [x.host, x.name, x.id]),
      [
        ['a', 'j', ra.id],
        ['b', 'j', rb.id],
      ],
    );
    assert.is(recs[0].status, 'RUNNING');
    // BGMON_HOSTS when --host is not given; --host '' means this machine (whose home is empty)
    const viaEnv = await onHosts(h, 'bgmon-status', ['--json'], { env: { BGMON_HOSTS: 'b' } });
    assert.equal(
      lines(viaEnv.stdout).map((x) => [x.host, x.id]),
      [['b', rb.id]],
    );
    const local = await onHosts(h, 'bgmon-status', ['--json', '--host', ''], { env: { BGMON_HOSTS: 'a,b' } });
    assert.is(local.code, 0, local.stderr);
    assert.is(local.stdout, '');
    const table = await onHosts(h, 'bgmon-status', ['--host', 'a,b', '--table']);
    const rows = table.stdout
      .trim()
      .split('\n')
      .map((l) => l.split(/\s+/));
    assert.equal(
      rows.map((row) => row.slice(0, 3)),
      [
        ['HOST', 'NAME', 'STATUS'],
        ['a', 'j', 'RUNNING'],
        ['b', 'j', 'SUCCEEDED'],
      ],
    );
  }),
);

test(
  'status with a host down or without bgmon: the others answer, one stderr line each, exit 1',
  withHosts(async (h) => {
    await startOn(h, 'a', 'j', 'sleep 60');
    await startOn(h, 'b', 'k', 'sleep 60');
    const r = await onHosts(h, 'bgmon-status', ['--host', 'a,down,b,bare']);
    assert.is(r.code, 1);
    assert.equal(
      lines(r.stdout)
        .map((x) => `${x.host}:${x.name}`)
        .sort(),
      ['a:j', 'b:k'],
    );
    assert.equal(r.stderr.split('\n').filter(Boolean).sort(), [
      'bgmon-status: host bare: bgmon-status not found on the remote PATH',
      `bgmon-status: ${DOWN_LINE}`,
    ]);
    // a transport that cannot be run at all is a host failure too, not a crash
    const none = await onHosts(h, 'bgmon-status', ['--host', 'a'], { env: { BGMON_SSH: join(h.dir, 'no-such-ssh') } });
    assert.is(none.code, 1);
    assert.is(none.stderr, 'bgmon-status: host a: cannot run ' + join(h.dir, 'no-such-ssh') + ': ENOENT\n');
  }),
);

slowTest(
  'a slow host does not hold up the others: their records are printed as they arrive',
  withHosts(async (h) => {
    await startOn(h, 'a', 'j', 'sleep 60');
    await startOn(h, 'slow1', 'j', 'sleep 60');
    const env = {
      ...(process.env as Record<string, string>),
      BGMON_HOME: h.root,
      ...fakeEnv(h, { FAKE_SLOW_SECONDS: '6' }),
    };
    const child = spawn(process.execPath, [binPath('bgmon-status'), '--host', 'slow1,a', '--json'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const t0 = Date.now();
    let firstAt = 0;
    let stdout = '';
    child.stdout.on('data', (c) => {
      if (!firstAt) firstAt = Date.now();
      stdout += c;
    });
    const code = await new Promise<number | null>((done) => child.on('close', done));
    const endAt = Date.now();
    assert.is(code, 0);
    assert.equal(
      lines(stdout).map((x) => x.host),
      ['a', 'slow1'],
    );
    // generous: the slow host sleeps 6 s before answering; a answers in well under 3 s
    assert.ok(endAt - firstAt > 3000, `first record ${firstAt - t0} ms, end ${endAt - t0} ms`);
  }),
);

slowTest(
  'wait --host a,b waits for the job on both; exit by the usual rule over all records',
  withHosts(async (h) => {
    await startOn(h, 'a', 'w', 'sleep 1');
    await startOn(h, 'b', 'w', 'sleep 2');
    const r = await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 'w']);
    assert.is(r.code, 0, r.stderr);
    const recs = lines(r.stdout);
    assert.equal(recs.map((x) => [x.host, x.status]).sort(), [
      ['a', 'SUCCEEDED'],
      ['b', 'SUCCEEDED'],
    ]);
    // one job on one host: its own exit code
    await startOn(h, 'a', 'seven', 'exit 7');
    assert.is((await onHosts(h, 'bgmon-wait', ['--host', 'a', 'seven'])).code, 7);
    // several records, one failed: 1
    await startOn(h, 'b', 'seven', 'exit 0');
    assert.is((await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 'seven'])).code, 1);
    // no host has it: 3; only some have it: 1 (the others say so on stderr)
    const none = await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 'nosuch']);
    assert.is(none.code, 3);
    assert.equal(none.stderr.split('\n').filter(Boolean).sort(), [
      'bgmon-wait: host a: no such job: nosuch',
      'bgmon-wait: host b: no such job: nosuch',
    ]);
    await startOn(h, 'a', 'only', 'exit 0');
    const some = await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 'only']);
    assert.is(some.code, 1);
    assert.is(some.stderr, 'bgmon-wait: host b: no such job: only\n');
    assert.equal(
      lines(some.stdout).map((x) => x.host),
      ['a'],
    );
  }),
);

slowTest(
  'wait: a timeout passes through as 124; a host down is 1 and does not hold up the others',
  withHosts(async (h) => {
    await startOn(h, 'a', 'long', 'sleep 60');
    await startOn(h, 'b', 'long', 'exit 0');
    const r = await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 'long', '--timeout', '1s']);
    assert.is(r.code, 124, r.stderr);
    assert.equal(
      lines(r.stdout)
        .map((x) => [x.host, x.status])
        .sort(),
      [
        ['a', 'RUNNING'],
        ['b', 'SUCCEEDED'],
      ],
    );
    const down = await onHosts(h, 'bgmon-wait', ['--host', 'down,b', 'long']);
    assert.is(down.code, 1);
    assert.is(down.stderr, `bgmon-wait: ${DOWN_LINE}\n`);
    assert.equal(
      lines(down.stdout).map((x) => [x.host, x.status]),
      [['b', 'SUCCEEDED']],
    );
    // --any: the first host whose job ends settles it; the other host's wait is ended
    const any = await onHosts(h, 'bgmon-wait', ['--host', 'a,b', '--any', 'long']);
    assert.is(any.code, 0, any.stderr);
    assert.ok(any.ms < 30_000);
    assert.equal(
      lines(any.stdout).map((x) => x.host),
      ['b'],
    );
  }),
);

test(
  'stop --host a,b stops the job on both',
  withHosts(async (h) => {
    const ra = await startOn(h, 'a', 's', 'sleep 60');
    const rb = await startOn(h, 'b', 's', 'sleep 60');
    const r = await onHosts(h, 'bgmon-stop', ['--host', 'a,b', 's', '--grace', '5s']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout)
        .map((x) => [x.host, x.status])
        .sort(),
      [
        ['a', 'STOPPED'],
        ['b', 'STOPPED'],
      ],
    );
    assert.not.ok(isAlive(ra.pid));
    assert.not.ok(isAlive(rb.pid));
  }),
);

slowTest(
  'records piped in go to their own host only; a record of another host is refused, nothing stopped',
  withHosts(async (h) => {
    const x = await startOn(h, 'a', 'x', 'sleep 60');
    const y = await startOn(h, 'b', 'y', 'sleep 60');
    const listed = await onHosts(h, 'bgmon-status', ['--host', 'a,b', '--json']);
    assert.is(lines(listed.stdout).length, 2);
    // a record naming a host not asked for (here: this machine's own record) rejects the input
    const local = JSON.stringify({ ...x, host: 'elsewhere' }) + '\n';
    const refused = await onHosts(h, 'bgmon-stop', ['--host', 'a,b'], { input: listed.stdout + local });
    assert.is(refused.code, 2);
    assert.match(
      refused.stderr,
      /^bgmon-stop: stdin line 3: host "elsewhere" is not one of the hosts asked for \(a,b\)\n$/,
    );
    assert.ok(isAlive(x.pid) && isAlive(y.pid));
    // x is only on a and y only on b: each host gets its own names (else a would say "no such job: y")
    const stopped = await onHosts(h, 'bgmon-stop', ['--host', 'a,b', '--grace', '5s'], { input: listed.stdout });
    assert.is(stopped.code, 0, stopped.stderr);
    assert.equal(
      lines(stopped.stdout)
        .map((r) => [r.host, r.name, r.status])
        .sort(),
      [
        ['a', 'x', 'STOPPED'],
        ['b', 'y', 'STOPPED'],
      ],
    );
    assert.not.ok(isAlive(x.pid) || isAlive(y.pid));
    // wait, with the hosts from BGMON_HOSTS: same routing; an empty stdin is still exit 3 for wait
    const waited = await onHosts(h, 'bgmon-wait', [], { input: listed.stdout, env: { BGMON_HOSTS: 'a,b' } });
    assert.is(waited.code, 1, waited.stderr); // several records, STOPPED: 1
    assert.equal(
      lines(waited.stdout)
        .map((r) => [r.host, r.name])
        .sort(),
      [
        ['a', 'x'],
        ['b', 'y'],
      ],
    );
    assert.is((await onHosts(h, 'bgmon-wait', [], { input: '', env: { BGMON_HOSTS: 'a,b' } })).code, 3);
    assert.is((await onHosts(h, 'bgmon-stop', ['--host', 'a,b'], { input: '' })).code, 0);
  }),
);

slowTest(
  'tail --host: lines prefixed HOST:NAME, --json adds host, one host and one job prints raw',
  withHosts(async (h) => {
    await startOn(h, 'a', 't', 'echo one; echo "two | 2"');
    await startOn(h, 'b', 't', 'echo three');
    await onHosts(h, 'bgmon-wait', ['--host', 'a,b', 't']);
    const r = await onHosts(h, 'bgmon-tail', ['--host', 'a,b', 't']);
    assert.is(r.code, 0, r.stderr);
    const out = r.stdout.split('\n').filter(Boolean);
    assert.equal(
      out.filter((l) => l.startsWith('a:')),
      ['a:t | one', 'a:t | two | 2'],
    );
    assert.equal(
      out.filter((l) => l.startsWith('b:')),
      ['b:t | three'],
    );
    const json = await onHosts(h, 'bgmon-tail', ['--host', 'a,b', '--json', 't']);
    assert.equal(
      lines(json.stdout)
        .map((l) => [l.host, l.name, l.line])
        .sort(),
      [
        ['a', 't', 'one'],
        ['a', 't', 'two | 2'],
        ['b', 't', 'three'],
      ],
    );
    const raw = await onHosts(h, 'bgmon-tail', ['--host', 'a', 't']);
    assert.is(raw.stdout, 'one\ntwo | 2\n');
    const glob = await onHosts(h, 'bgmon-tail', ['--host', 'a', 't*']);
    assert.is(glob.stdout, 'a:t | one\na:t | two | 2\n');
    const down = await onHosts(h, 'bgmon-tail', ['--host', 'down,b', '-f', 't']);
    assert.is(down.code, 1);
    assert.is(down.stdout, 'b:t | three\n');
    assert.is(down.stderr, `bgmon-tail: ${DOWN_LINE}\n`);
  }),
);

test(
  "a host's stderr and garbage reach our stderr with control characters escaped, never raw",
  withHosts(async (h) => {
    const r = await onHosts(h, 'bgmon-status', ['--host', 'noisy', '--json']);
    assert.is(r.code, 1);
    assert.is(r.stdout, '');
    assert.equal(r.stderr.split('\n').filter(Boolean).sort(), [
      'bgmon-status: host noisy: \\x1b]0;owned\\x07\\x1b[2Jcleared',
      'bgmon-status: host noisy: printed something that is not bgmon-status output: \\x1b[31m{not a record',
    ]);
  }),
);

test(
  'every word reaches the remote command quoted: globs are not expanded by the remote shell',
  withHosts(async (h) => {
    await startOn(h, 'a', 'g1', 'exit 0');
    writeFileSync(join(h.dir, 'g1x'), ''); // the remote shell runs in this directory: `g*` would expand to g1x
    const r = await onHosts(h, 'bgmon-status', ['--host', 'a', 'g*', '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.equal(
      lines(r.stdout).map((x) => x.name),
      ['g1'],
    );
  }),
);

test(
  'bad --host or BGMON_HOSTS: exit 2, one line, no host is asked',
  withHosts(async (h) => {
    const evil = await onHosts(h, 'bgmon-status', ['--host', 'a,-oProxyCommand=touch pwned']);
    assert.is(evil.code, 2);
    assert.is(evil.stderr, 'bgmon-status: --host: not a host name: "-oProxyCommand=touch pwned"\n');
    const env = await onHosts(h, 'bgmon-stop', ['x'], { env: { BGMON_HOSTS: 'a b' } });
    assert.is(env.code, 2);
    assert.is(env.stderr, 'bgmon-stop: BGMON_HOSTS: not a host name: "a b"\n');
    const badName = await onHosts(h, 'bgmon-wait', ['--host', 'down', '../x']);
    assert.is(badName.code, 2);
    assert.match(badName.stderr, /^bgmon-wait: invalid job name/);
  }),
);

test.run();
