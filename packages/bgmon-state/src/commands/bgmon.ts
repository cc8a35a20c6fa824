import type { CommandDoc } from './types';

export const bgmon: CommandDoc = {
  name: 'bgmon',
  summary: 'daemonless background jobs for the shell',
  synopsis: ['bgmon COMMAND [ARGS...]'],
  description: [
    'Runs bgmon-COMMAND with ARGS (like git), in the same process, so it costs no extra start-up. ' +
      '"bgmon", "bgmon --help" and "bgmon help" list the commands; "bgmon COMMAND --help" shows a ' +
      "command's options and exit codes. The exit code is the command's.",
  ],
  operands: 'text',
  options: [],
  exit: [
    { code: '2', meaning: 'unknown command' },
    { code: 'other', meaning: "the command's own exit code" },
  ],
  examples: [
    { command: 'bgmon start --name train -- python train.py' },
    { command: 'bgmon status' },
    { command: 'bgmon wait train && bgmon start --name eval -- python eval.py' },
  ],
};
