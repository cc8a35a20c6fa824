import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { commands, renderUsage, warn } from 'bgmon-state/cli';
import { version } from '../package.json';

const COMMANDS = new Set(commands.SUBCOMMANDS.map(commands.subcommandWord));
const usage = renderUsage(commands.bgmon, commands.SUBCOMMANDS);

/** The command's bin shim: from its installed package, or beside this one in the workspace. */
function binOf(command: string): string {
  const pkg = `bgmon-${command}`;
  try {
    return join(dirname(require.resolve(`${pkg}/package.json`)), 'bin', pkg);
  } catch {
    const sibling = join(__dirname, '..', '..', pkg, 'bin', pkg);
    if (existsSync(sibling)) return sibling;
    return '';
  }
}

const [command, ...rest] = process.argv.slice(2);
if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
  process.stdout.write(usage);
} else if (command === '--version') {
  process.stdout.write(`bgmon ${version}\n`);
} else if (!COMMANDS.has(command)) {
  warn('bgmon', `unknown command ${JSON.stringify(command)} (see bgmon --help)`);
  process.exitCode = 2;
} else {
  // Run the command in this process: one Node start-up, not two.
  const bin = binOf(command);
  if (bin === '') {
    warn('bgmon', `bgmon-${command} is not installed (install the bgmon-${command} package)`);
    process.exitCode = 1;
  } else {
    process.argv = [process.argv[0], bin, ...rest];
    require(bin);
  }
}
