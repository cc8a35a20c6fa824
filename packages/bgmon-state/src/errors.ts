// Every failure a command can report carries the exit code the contract gives it,
// so entry files never decide codes themselves.
export class BgmonError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags, names, durations or stdin: exit 2. */
export class UsageError extends BgmonError {
  constructor(message: string) {
    super(message, 2);
  }
}

/** A name or glob that matches no job: exit 3. */
export class NotFoundError extends BgmonError {
  constructor(message: string) {
    super(message, 3);
  }
}

/** The job exists but the request cannot be honoured (busy name, STALE job, corrupt record): exit 1. */
export class StateError extends BgmonError {
  constructor(message: string) {
    super(message, 1);
  }
}

/** The command to run cannot be found or executed: exit 127, as a shell reports it. */
export class ExecError extends BgmonError {
  constructor(message: string) {
    super(message, 127);
  }
}
