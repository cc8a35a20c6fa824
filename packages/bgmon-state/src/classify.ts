import type { Home } from './paths';
import { queuedState } from './queue-rules';
import type { JobRecord } from './record';
import { runState } from './run-state';

/** The job as it stands now, computed on every read: see queue-rules.ts and run-state.ts. */
export function currentState(home: Home, rec: JobRecord): JobRecord {
  return rec.status === 'QUEUED' ? queuedState(home, rec) : runState(home, rec);
}
