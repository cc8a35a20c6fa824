/*
 * A command's interface as plain data: the one source of its --help text, its argument parser's
 * flag lists (usage.ts), its man page and the bash completion (scripts/man.mjs).
 */

/** What an option's value (or a command's operand) is, for help texts and completion. */
export type ValueKind = 'states' | 'signals' | 'jobs' | 'jobs-then-signal' | 'dirs' | 'commands' | 'text';

export interface OptionSpec {
  /** long name without dashes; a one-letter flag is written -n */
  flag: string;
  /** one-letter alias: -f for --follow */
  alias?: string;
  /** the value's placeholder (N, DIR, DUR); a flag without arg is a boolean */
  arg?: string;
  help: string;
  default?: string;
  /** what the value is; default 'text' */
  values?: ValueKind;
  /** the value is a comma-separated list (--status S1,S2) */
  commaList?: boolean;
  repeatable?: boolean;
}

export interface ExitSpec {
  code: string;
  meaning: string;
}

export interface ExampleSpec {
  command: string;
  comment?: string;
}

export interface CommandDoc {
  name: string;
  /** one line, lower case, no full stop: the man page's NAME line and bgmon's list */
  summary: string;
  synopsis: string[];
  /** paragraphs of plain text */
  description: string[];
  options: OptionSpec[];
  /** what the words that are not options are */
  operands: ValueKind;
  /** options end at the first operand (bgmon-start: the rest is the job's command) */
  stopEarly?: boolean;
  exit: ExitSpec[];
  examples: ExampleSpec[];
}

export interface FileSpec {
  path: string;
  meaning: string;
}
