import minimist from 'minimist';
import { BgmonError, UsageError } from './errors';
import { out } from './stdout';

export { out };
import { homeFromEnv } from './paths';
import { isValidName } from './names';
import { isNoSpace, noSpaceError } from './fsutil';
import { foldEnd } from './fold';
import { advanceQueue, hasQueuedJobs } from './queue';

export interface CommandSpec {
  name: string;
  version: string;
  /** full --help text */
  usage: string;
  strings?: string[];
  booleans?: string[];
  alias?: Record<string, string>;
  /** stop at the first non-option (bgmon-start's command) */
  stopEarly?: boolean;
}

export type Args = minimist.ParsedArgs;

export function parseArgs(spec: CommandSpec, argv: string[]): Args {
  const known = new Set<string>([...(spec.strings ?? []), ...(spec.booleans ?? []), 'help', 'version', 'h']);
  for (const [k, v] of Object.entries(spec.alias ?? {})) known.add(k).add(v);
  const [options, operands] = spec.stopEarly ? splitAtCommand(spec, argv) : [argv, null];
  refuseInheritedNames(options);
  const args = minimist(options, {
    string: ['_', ...(spec.strings ?? [])],
    boolean: [...(spec.booleans ?? []), 'help', 'version'],
    alias: { h: 'help', ...spec.alias },
    unknown: (arg) => {
      if (arg.startsWith('-') && arg !== '-' && arg !== '--') {
        const flag = arg.replace(/^--?(no-)?/, '').split('=')[0];
        const short = !arg.startsWith('--') && arg.length > 2 ? arg.slice(1, 2) : flag;
        if (!known.has(flag) && !known.has(short))
          throw new UsageError(`unknown option ${arg.split('=')[0]} (see --help)`);
      }
      return true;
    },
  });
  if (operands) args._ = operands;
  return args;
}

/**
 * minimist looks option names up in plain objects: an option named like something every object
 * inherits (--constructor, --__proto__, --toString) passes as known and then crashes it, so such
 * a name is refused first, as the unknown option it is.
 */
function refuseInheritedNames(options: string[]): void {
  for (const arg of options) {
    if (arg === '--') return;
    const name = /^--?(?:no-)?([^=]+)/.exec(arg)?.[1];
    if (name !== undefined && name in Object.prototype) {
      throw new UsageError(`unknown option ${arg.split('=')[0]} (see --help)`);
    }
  }
}

/**
 * bgmon-start's options end at the first `--` or the first word that is not an option; every
 * word after that is the command, verbatim (minimist alone would take a `--` from inside it).
 * A value-taking option with nothing after it is a usage error, not the start of the command.
 */
function splitAtCommand(spec: CommandSpec, argv: string[]): [string[], string[]] {
  const takesValue = new Set(spec.strings ?? []);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') return [argv.slice(0, i), argv.slice(i + 1)];
    if (!arg.startsWith('-') || arg === '-') return [argv.slice(0, i), argv.slice(i)];
    const flag = arg.replace(/^--?/, '');
    if (takesValue.has(flag)) {
      const value = argv[i + 1];
      if (value === undefined || value === '--') throw new UsageError(`${arg}: missing value (see --help)`);
      i++;
    }
  }
  return [argv, []];
}

/** A flag given more than once arrives as an array; commands want the last value. */
export function lastString(value: unknown): string | undefined {
  if (Array.isArray(value)) return lastString(value[value.length - 1]);
  return value === undefined ? undefined : String(value);
}

export function allStrings(value: unknown): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [value]).map(String);
}

/** One line on stderr, prefixed with the command's name. */
export function warn(command: string, message: string): void {
  process.stderr.write(`${command}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
}

/**
 * What a supervisor runs once its job has ended (`--job-ended NAME ID`): fold the end into the
 * record, then start or cancel whatever was queued behind it. `--advance-queue` alone is what
 * supervisors of earlier versions run.
 */
async function afterJobEnded(argv: string[]): Promise<void> {
  const home = homeFromEnv();
  const [, name, id] = argv;
  if (argv[0] === '--job-ended' && isValidName(name) && id) {
    await foldEnd(home, name, id);
  }
  // a supervisor never waits in line for a queue's lock: its holder passes again (see advanceQueue)
  if (hasQueuedJobs(home)) await advanceQueue(home, { waitForQueueLock: false });
}

function finish(code: number): void {
  process.exit(code);
}

/**
 * Runs a command: --help, --version and the hidden --advance-queue (run by supervisors) are
 * handled here; errors become one stderr line and the exit code they carry.
 */
export function runCommand(spec: CommandSpec, main: (args: Args) => Promise<number | void> | number | void): void {
  const argv = process.argv.slice(2);
  const go = async (): Promise<number> => {
    if (argv[0] === '--job-ended' || argv[0] === '--advance-queue') {
      await afterJobEnded(argv);
      return 0;
    }
    const args = parseArgs(spec, argv);
    if (args.help) {
      out(spec.usage.trim() + '\n');
      return 0;
    }
    if (args.version) {
      out(`${spec.name} ${spec.version}\n`);
      return 0;
    }
    return (await main(args)) ?? 0;
  };
  go().then(finish, (err) => {
    // a full disk or quota is the user's to fix: one line, exit 1, never an internal error
    if (isNoSpace(err)) err = noSpaceError((err as NodeJS.ErrnoException).path ?? 'the state directory', err);
    if (err instanceof BgmonError) warn(spec.name, err.message);
    else warn(spec.name, `internal error: ${(err as Error)?.stack?.split('\n').slice(0, 2).join(' ') ?? err}`);
    finish(err instanceof BgmonError ? err.exitCode : 1);
  });
}
