import { bgmon } from './bgmon';
import { rm } from './rm';
import { signal } from './signal';
import { start } from './start';
import { status } from './status';
import { stop } from './stop';
import { tail } from './tail';
import type { CommandDoc } from './types';
import { wait } from './wait';

export { ENVIRONMENT, FILES, READS_STDIN, STANDARD_OPTIONS } from './common';
export type { CommandDoc, ExampleSpec, ExitSpec, FileSpec, OptionSpec, ValueKind } from './types';
export { bgmon, rm, signal, start, status, stop, tail, wait };

/** bgmon's subcommands, in the order its help lists them: `bgmon start` runs bgmon-start. */
export const SUBCOMMANDS: CommandDoc[] = [start, status, stop, signal, tail, wait, rm];

export const subcommandWord = (doc: CommandDoc) => doc.name.replace(/^bgmon-/, '');
