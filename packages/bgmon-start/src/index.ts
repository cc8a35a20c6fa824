import { againOptions, commands, commandSpec, allStrings, homeFromEnv, lastString, ndjson, out, runCommand, startJob } from 'bgmon-state';
import type { StartOptions } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.start, version), async (args) => {
  const home = homeFromEnv();
  const given: StartOptions = {
    name: lastString(args.name),
    cwd: lastString(args.cwd),
    env: allStrings(args.env),
    after: allStrings(args.after),
    cmd: args._,
  };
  const again = lastString(args.again);
  const record = await startJob(home, again === undefined ? given : againOptions(home, again, given));
  out(ndjson([record]));
});
