import type { CommandSpec } from './cli';
import { STANDARD_OPTIONS, subcommandWord, type CommandDoc, type OptionSpec, type ValueKind } from './commands';
import { signalNames } from './proc';
import { STATUSES } from './record';

/*
 * A command's --help text and its parser's flag lists, both from its CommandDoc, so the help
 * cannot name a flag the parser refuses or miss one it takes. scripts/man.mjs renders the man
 * pages and the bash completion from the same docs.
 */

const WIDTH = 80;

/** The fixed values an option takes, or null when they are not a fixed list. */
export function valuesOf(kind: ValueKind | undefined): string[] | null {
  if (kind === 'states') return [...STATUSES];
  if (kind === 'signals') return signalNames();
  return null;
}

/** The values as a help text lists them: the real-time signals as a range, not 31 names. */
export function valuesText(kind: ValueKind | undefined): string | null {
  const values = valuesOf(kind);
  if (!values) return null;
  const named = values.filter((v) => !v.startsWith('RT'));
  const ranges = named.length < values.length ? ', RTMIN, RTMIN+1 ... RTMIN+15, RTMAX-14 ... RTMAX-1, RTMAX' : '';
  return named.join(' ') + ranges;
}

/** -n, --name, -f, --follow: how the flag is written. */
export const flagWord = (flag: string) => (flag.length === 1 ? `-${flag}` : `--${flag}`);

/** "-f, --follow", "--name N", "-h, --help": an option as the help's left column shows it. */
export function optionLabel(opt: OptionSpec): string {
  const words = [opt.alias ? `-${opt.alias}, ` : '', flagWord(opt.flag), opt.arg ? ` ${opt.arg}` : ''];
  return words.join('');
}

/** The option's help with its default and its values. */
export function optionHelp(opt: OptionSpec): string {
  const values = valuesText(opt.values);
  return [opt.help, opt.default ? ` (default: ${opt.default})` : '', values ? `; one of: ${values}` : ''].join('');
}

/** Wraps text at WIDTH, every line after the first indented by `indent` spaces. */
export function wrap(text: string, first: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  let room = WIDTH - first;
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + word.length > room) {
      lines.push(line);
      line = word;
      room = WIDTH - indent;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join('\n' + ' '.repeat(indent));
}

function optionsSection(options: OptionSpec[]): string {
  const all = [...options, ...STANDARD_OPTIONS];
  const column = Math.min(18, Math.max(...all.map((o) => optionLabel(o).length)) + 2);
  const rows = all.map((o) => {
    const label = optionLabel(o);
    const pad = label.length + 2 <= column ? ' '.repeat(column - label.length) : `\n${' '.repeat(column + 2)}`;
    return `  ${label}${pad}${wrap(optionHelp(o), column + 2, column + 2)}`;
  });
  return `Options:\n${rows.join('\n')}`;
}

function examplesSection(doc: CommandDoc): string {
  const rows = doc.examples.map((e) => `  ${e.command}${e.comment ? `    # ${e.comment}` : ''}`);
  return `Examples:\n${rows.join('\n')}`;
}

/** The command's --help text. */
export function renderUsage(doc: CommandDoc, subcommands: CommandDoc[] = []): string {
  const synopsis = doc.synopsis.map((s, i) => (i === 0 ? `Usage: ${s}` : `       ${s}`)).join('\n');
  const listed = subcommands.map((c) => `  ${subcommandWord(c).padEnd(8)}${wrap(c.summary, 10, 10)}`);
  const commands = subcommands.length === 0 ? [] : [`Commands:\n${listed.join('\n')}`];
  const codeWidth = Math.max(...doc.exit.map((e) => e.code.length)) + 2;
  const exitRows = doc.exit.map((e) => `  ${e.code.padEnd(codeWidth)}${wrap(e.meaning, codeWidth + 2, codeWidth + 2)}`);
  const exit = `Exit status:\n${exitRows.join('\n')}`;
  return (
    [
      synopsis,
      ...doc.description.map((p) => wrap(p, 0, 0)),
      ...commands,
      optionsSection(doc.options),
      exit,
      examplesSection(doc),
    ]
      .filter(Boolean)
      .join('\n\n') + '\n'
  );
}

/** What runCommand parses with: the value-taking flags, the boolean ones and the aliases, from the doc. */
export function commandSpec(doc: CommandDoc, version: string): CommandSpec {
  const alias: Record<string, string> = {};
  for (const o of doc.options) if (o.alias) alias[o.alias] = o.flag;
  return {
    name: doc.name,
    version,
    // rendered only for --help: wrapping every paragraph costs each command start-up
    get usage() {
      return renderUsage(doc);
    },
    strings: doc.options.filter((o) => o.arg).map((o) => o.flag),
    booleans: doc.options.filter((o) => !o.arg).map((o) => o.flag),
    alias,
    stopEarly: doc.stopEarly,
  };
}
