/*
 * bgmon-state/cli: what the command-line entries need beyond the library: the command runner and
 * argument parsing, each command's description (--help, man pages, completion), names from stdin,
 * and running a command on other hosts.
 */
export { allStrings, type Args, type CommandSpec, lastString, out, parseArgs, runCommand, warn } from './cli';
export * as commands from './commands';
export { commandSpec, flagWord, renderUsage, valuesOf } from './usage';
export { requestedHosts, runHostedCommand, runOnHosts } from './hosts';
export { readNamesFromStdin, requestedPatterns } from './select';
