import minimist from 'minimist';
import { writeSync } from 'node:fs';
import { sleepSync } from './sleep';
import { BgmonError, UsageError } from './errors';
import { homeFromEnv } from './paths';
import { CorruptRecordError } from './record';
import { isNoSpace, noSpaceError } from './fsutil';

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
  return minimist(argv, {
    string: ['_', ...(spec.strings ?? [])],
    boolean: [...(spec.booleans ?? []), 'help', 'version'],
    alias: { h: 'help', ...spec.alias },
    stopEarly: spec.stopEarly,
    unknown: (arg) => {
      if (arg.startsWith('-') && arg !== '-' && arg !== '--') {
        const flag = arg.replace(/^--?(no-)?/, '').split('=')[0];
        const short = !arg.startsWith('--') && arg.length > 2 ? arg.slice(1, 2) : flag;
        if (!known.has(flag) && !known.has(short)) throw new UsageError(`unknown option ${arg.split('=')[0]} (see --help)`);
      }
      return true;
    },
  });
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

/**
 * Writes to fd 1 synchronously. Not process.stdout: creating that stream costs every command
 * ~5 ms of start-up, and it would make a pipe non-blocking. A closed pipe (`| head`) ends the
 * command quietly, as it would a C tool.
 */
export function out(data: string | Buffer): void {
  let buf = typeof data === 'string' ? Buffer.from(data) : data;
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') sleepSync(1);
      else if (code === 'EPIPE') process.exit(0);
      else throw err;
    }
  }
}

/** One line on stderr, prefixed with the command's name. */
export function warn(command: string, message: string): void {
  process.stderr.write(`${command}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
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
    if (argv[0] === '--advance-queue') {
      const { advanceQueue } = await import('./queue');
      await advanceQueue(homeFromEnv());
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
    if (err instanceof BgmonError || err instanceof CorruptRecordError) warn(spec.name, err.message);
    else warn(spec.name, `internal error: ${(err as Error)?.stack?.split('\n').slice(0, 2).join(' ') ?? err}`);
    finish(err instanceof BgmonError ? err.exitCode : 1);
  });
}
