import { allStrings, homeFromEnv, lastString, ndjson, out, runCommand, startJob } from 'bgmon-state';
import { version } from '../package.json';

const usage = `
Usage: bgmon-start [--name N] [--cwd DIR] [--env K=V]... [--after NAME]... [--] CMD [ARG...]

Starts CMD detached from the terminal, in its own session, stdin from /dev/null, stdout and
stderr into $BGMON_HOME/logs/<name>.log; prints the job's record (one JSON line) at once.
The exit code or signal and the end time are recorded when the job ends.

Options:
  --name N      job name ([A-Za-z0-9][A-Za-z0-9._-]{0,127}); default: CMD's basename + suffix
  --cwd DIR     working directory (default: the current one)
  --env K=V     extra environment variable (repeatable)
  --after NAME  stay QUEUED until NAME ends; run only if it SUCCEEDED, else CANCELLED (repeatable)
  -h, --help    this help;  --version  the version

Exit: 0 started (or queued); 1 a job of that name is QUEUED or RUNNING; 2 usage error
(bad name, flag, --cwd, unknown or cyclic --after); 127 CMD not found or not executable.

Examples:
  bgmon-start --name train -- python train.py --epochs 10
  bgmon-wait fetch && bgmon-start --name build -- make -j4
  bgmon-start --name deploy --after build -- ./deploy.sh
`;

runCommand({ name: 'bgmon-start', version, usage, strings: ['name', 'cwd', 'env', 'after'], stopEarly: true }, async (args) => {
  const record = await startJob(homeFromEnv(), {
    name: lastString(args.name),
    cwd: lastString(args.cwd),
    env: allStrings(args.env),
    after: allStrings(args.after),
    cmd: args._,
  });
  out(ndjson([record]));
});
