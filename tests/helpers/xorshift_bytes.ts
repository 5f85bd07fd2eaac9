/** `n` pseudo-random bytes from `seed` (xorshift32): no short period, so a buffer reused too early shows up as a mismatch. */
export function xorshiftBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}
