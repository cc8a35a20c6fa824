import { writeSync } from 'node:fs';
import { sleepSync } from './sleep';

/**
 * Writes to fd 1 synchronously. Not process.stdout: creating that stream costs every command
 * ~5 ms of start-up, and it would make a pipe non-blocking. A closed pipe (`| head`) ends the
 * command quietly, as it would a C tool.
 */
export function out(data: string | Buffer): void {
  let buf = typeof data === 'string' ? Buffer.from(data) : data;
  while (buf.length > 0) {
    try {
      buf = buf.subarray(writeSync(1, buf));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') sleepSync(1);
      else if (code === 'EPIPE') process.exit(0);
      else throw err;
    }
  }
}
