import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { ROOT, withHome, type TestHome } from './helpers';

const SCRIPT = join(ROOT, 'packages', 'bgmon', 'completions', 'bgmon.bash');

async function complete(h: TestHome, words: string[]): Promise<string[]> {
  const quoted = words.map((w) => `'${w}'`).join(' ');
  const r = await h.run('/bin/bash', [
    '-c',
    `source '${SCRIPT}'; COMP_WORDS=(${quoted}); COMP_CWORD=${words.length - 1}; _bgmon_complete; printf '%s\\n' ` +
      `"\${COMPREPLY[@]}"`,
  ]);
  assert.is(r.code, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean).sort();
}

test(
  'bash completion: commands, flags per command, job names, states',
  withHome(async (h) => {
    await h.start('train_a', ['true']);
    await h.start('train_b', ['true']);
    await h.start('eval', ['true']);
    assert.equal(await complete(h, ['bgmon', 's']), ['signal', 'start', 'status', 'stop']);
    assert.equal(await complete(h, ['bgmon-signal', 'ev']), ['eval']);
    assert.equal(await complete(h, ['bgmon', 'signal', 'eval', 'ST']), ['STKFLT', 'STOP']);
    assert.equal(await complete(h, ['bgmon-status', '--status', 'P']), ['PAUSED']);
    assert.equal(await complete(h, ['bgmon-stop', '--']), ['--grace', '--help', '--host', '--signal', '--version']);
    assert.equal(await complete(h, ['bgmon', 'tail', '--f']), ['--follow']);
    assert.equal(await complete(h, ['bgmon-wait', 'train']), ['train_a', 'train_b']);
    assert.equal(await complete(h, ['bgmon', 'rm', '']), ['eval', 'train_a', 'train_b']);
    assert.equal(await complete(h, ['bgmon-start', '--after', 'e']), ['eval']);
    assert.equal(await complete(h, ['bgmon-status', '--status', 'S']), ['STALE', 'STOPPED', 'SUCCEEDED']);
    assert.ok((await complete(h, ['bgmon-start', '--name', 'x', '--', 'slee'])).includes('sleep'));
  }),
);

test.run();
