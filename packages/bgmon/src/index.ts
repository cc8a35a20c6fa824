import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { warn } from 'bgmon-state';
import { version } from '../package.json';

const COMMANDS: Record<string, string> = {
  start: 'start a command detached, in its own session, logging to a file',
  status: 'show jobs and their state (RUNNING, PAUSED, SUCCEEDED, FAILED, DEAD, STALE, ...)',
  stop: "stop a job's whole process tree: signal, grace, then SIGKILL",
  signal: 'send a signal to a job without ending it: HUP to reload, STOP/CONT to pause',
  tail: 'print or follow (-f) the end of jobs\' logs',
  wait: 'wait for jobs to end; exit with their exit code',
  rm: 'remove the records and logs of ended jobs',
};

const usage = `Usage: bgmon COMMAND [ARGS...]

Runs bgmon-COMMAND with ARGS (like git). Commands:
${Object.entries(COMMANDS).map(([c, s]) => `  ${c.padEnd(8)}${s}`).join('\n')}

"bgmon COMMAND --help" shows a command's options and exit codes.

Examples:
  bgmon start --name train -- python train.py
  bgmon status
  bgmon wait train && bgmon start --name eval -- python eval.py
`;

/** The command's bin shim: from its installed package, or beside this one in the workspace. */
function binOf(command: string): string {
  const pkg = `bgmon-${command}`;
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', pkg);
  } catch {
    const sibling = join(__dirname, '..', '..', pkg, 'bin', pkg);
    if (existsSync(sibling)) return sibling;
    throw new Error(`${pkg} is not installed`);
  }
}

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(usage);
} else if (command === '--version') {
  process.stdout.write(`bgmon ${version}\n`);
} else if (!Object.hasOwn(COMMANDS, command)) {
  warn('bgmon', `unknown command ${JSON.stringify(command)} (see bgmon --help)`);
  process.exitCode = 2;
} else {
  // Run the command in this process: one Node start-up, not two.
  const bin = binOf(command);
  process.argv = [process.argv[0], bin, ...rest];
  require(bin);
}
