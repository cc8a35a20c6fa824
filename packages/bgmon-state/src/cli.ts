import minimist from 'minimist';
import { BgmonError, UsageError } from './errors';
import { homeFromEnv } from './paths';
import { CorruptRecordError } from './record';

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

export function out(text: string): void {
  if (text) process.stdout.write(text);
}

/** One line on stderr, prefixed with the command's name. */
export function warn(command: string, message: string): void {
  process.stderr.write(`${command}: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
}

function finish(code: number): void {
  process.exitCode = code;
  process.stdout.write('', () => process.exit(code));
}

/**
 * Runs a command: --help, --version and the hidden --advance-queue (run by supervisors) are
 * handled here; errors become one stderr line and the exit code they carry.
 */
export function runCommand(spec: CommandSpec, main: (args: Args) => Promise<number | void> | number | void): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 0 : 1));
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
    if (err instanceof BgmonError || err instanceof CorruptRecordError) warn(spec.name, err.message);
    else warn(spec.name, `internal error: ${(err as Error)?.stack?.split('\n').slice(0, 2).join(' ') ?? err}`);
    finish(err instanceof BgmonError ? err.exitCode : 1);
  });
}
