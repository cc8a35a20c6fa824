import {
  againOptions,
  homeFromEnv,
  ndjson,
  notBefore,
  parseSlots,
  readSpecsInput,
  startJob,
  startJobs,
  UsageError,
} from 'bgmon-state';
import { commands, commandSpec, allStrings, lastString, out, runCommand } from 'bgmon-state/cli';
import type { StartOptions } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.start, version), async (args) => {
  const home = homeFromEnv();
  const slots = lastString(args.slots);
  const common = {
    cwd: lastString(args.cwd),
    env: allStrings(args.env),
    after: allStrings(args.after),
    queue: lastString(args.queue),
    slots: slots === undefined ? undefined : parseSlots(slots),
    retry: {
      retry: lastString(args.retry),
      delay: lastString(args['retry-delay']),
      maxDelay: lastString(args['retry-max-delay']),
      on: lastString(args['retry-on']),
    },
    onEnd: lastString(args['on-end']),
  };
  if (args._.length === 1 && args._[0] === '-') {
    if (args.name !== undefined) throw new UsageError('--name: give names on the stdin lines ("name"), not with -');
    if (args.again !== undefined) throw new UsageError('--again: starts one run again, not with -');
    // each line's own "in"/"at" wins over these defaults
    const defaults = { ...common, in: lastString(args.in), at: lastString(args.at) };
    notBefore(defaults.in, defaults.at); // a bad --in/--at is refused before stdin is read
    out(ndjson(await startJobs(home, readSpecsInput(), defaults)));
    return;
  }
  const given: StartOptions = {
    ...common,
    name: lastString(args.name),
    notBefore: notBefore(lastString(args.in), lastString(args.at)),
    cmd: args._,
  };
  const again = lastString(args.again);
  const record = await startJob(home, again === undefined ? given : againOptions(home, again, given));
  out(ndjson([record]));
});
