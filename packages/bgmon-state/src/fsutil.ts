import { unlinkSync } from 'node:fs';

export function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {}
}
