const cell = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread: used only for the few milliseconds a supervisor needs to finish its write. */
export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
