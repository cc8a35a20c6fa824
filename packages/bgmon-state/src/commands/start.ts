import type { CommandDoc } from './types';

export const start: CommandDoc = {
  name: 'bgmon-start',
  summary: 'start a command detached, in its own session, logging to a file',
  synopsis: [
    'bgmon-start [--name N] [--cwd DIR] [--env K=V]... [--after NAME]... [--] CMD [ARG...]',
    'bgmon-start --again NAME|NAME@ID [--name N] [--cwd DIR] [--env K=V]... [--after NAME]...',
  ],
  description: [
    'Starts CMD detached from the terminal, in a new session (its pid is also its process group and ' +
      'session id), stdin from /dev/null, stdout and stderr written by the job itself into ' +
      '$BGMON_HOME/logs/<name>.log, and prints the job\'s record (one JSON line) at once. The record ' +
      'is on disk before the job\'s own code runs. The exit code or signal and the end time are ' +
      'recorded when the job ends, by a small sh supervisor, with no daemon.',
    'Options end at the first word that is not an option, so "--" is optional. Without --name the ' +
      'name is CMD\'s basename plus a short random suffix. Starting a name whose previous run has ' +
      'ended replaces its record and keeps the previous log as logs/<name>@<id>.log. The job\'s ' +
      'environment is the caller\'s plus --env, BGMON_JOB, BGMON_JOB_ID and BGMON_HOME.',
    'With --after the job is QUEUED (no process is kept for it) until every NAME has ended; it then ' +
      'runs if they all SUCCEEDED, else it ends CANCELLED without running. Whoever notices the end ' +
      '(the supervisor of the job that ended, bgmon-status, bgmon-wait) starts or cancels it. ' +
      '--after NAME@ID waits for that run (current or kept) instead of NAME\'s current one.',
    '--again NAME starts NAME\'s current run again exactly (NAME@ID: that run, current or kept): the ' +
      'same argv, cwd, --env values and --after names, plus whatever else the record keeps about how it ' +
      'was started. Also after a CANCELLED or STOPPED run; refused while the run is QUEUED, RUNNING or ' +
      'PAUSED (exit 1). Options given beside --again override: --name, --cwd and --after replace, --env ' +
      'adds or replaces single keys; a command is refused. --env values are kept in ' +
      '$BGMON_HOME/run/<name>@<id>.env (0600) for this; records show only their keys (env_keys).',
  ],
  operands: 'commands',
  stopEarly: true,
  options: [
    { flag: 'name', arg: 'N', help: 'the job\'s name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}', default: 'CMD\'s basename + suffix' },
    { flag: 'cwd', arg: 'DIR', values: 'dirs', help: 'working directory', default: 'the current one' },
    { flag: 'env', arg: 'K=V', repeatable: true, help: 'an extra environment variable (repeatable)' },
    { flag: 'after', arg: 'NAME', values: 'jobs', repeatable: true, help: 'stay QUEUED until NAME ends; run only if it SUCCEEDED, else CANCELLED (repeatable)' },
    { flag: 'again', arg: 'NAME', values: 'jobs', help: 'start NAME (or the run NAME@ID) again with its argv, cwd, --env values and --after' },
  ],
  exit: [
    { code: '0', meaning: 'started, or queued (or cancelled at once: the printed record says which)' },
    { code: '1', meaning: 'a job of that name is QUEUED, RUNNING or PAUSED (also the run given to --again), or its record is corrupt' },
    { code: '2', meaning: 'usage error: bad name, flag, --env or --cwd, unknown or cyclic --after' },
    { code: '3', meaning: '--again NAME or NAME@ID matches no job or run' },
    { code: '127', meaning: 'CMD not found or not executable (nothing is created)' },
  ],
  examples: [
    { command: 'bgmon-start --name train -- python train.py --epochs 10' },
    { command: 'bgmon-wait fetch && bgmon-start --name build -- make -j4', comment: 'chain two stages' },
    { command: 'bgmon-start --name deploy --after build -- ./deploy.sh', comment: 'runs once build SUCCEEDED' },
    { command: 'bgmon-start --again build', comment: 'the same command, cwd and --env values once more' },
  ],
};
