import { commands, commandSpec, allStrings, homeFromEnv, lastString, ndjson, out, runCommand, startJob } from 'bgmon-state';
import { version } from '../package.json';

runCommand(commandSpec(commands.start, version), async (args) => {
  const record = await startJob(homeFromEnv(), {
    name: lastString(args.name),
    cwd: lastString(args.cwd),
    env: allStrings(args.env),
    after: allStrings(args.after),
    cmd: args._,
    retry: {
      retry: lastString(args.retry), delay: lastString(args['retry-delay']),
      maxDelay: lastString(args['retry-max-delay']), on: lastString(args['retry-on']),
    },
    onEnd: lastString(args['on-end']),
  });
  out(ndjson([record]));
});
