// Math.random, not node:crypto: ids only need to differ between runs (they also carry the time),
// and loading crypto would cost every command ~8 ms of start-up.
export function randomHex(digits: number): string {
  let out = '';
  while (out.length < digits) out += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return out.slice(0, digits);
}
