/** Byte helpers shared by the wire formats. */

export function b64u(bytes: Uint8Array): string {
  return bytes.toBase64({ alphabet: "base64url", omitPadding: true });
}

/** Strict base64url decode: undefined for anything that is not canonical base64url. */
export function fromB64u(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) return undefined;
  try {
    const out = Uint8Array.fromBase64(text, { alphabet: "base64url", lastChunkHandling: "loose" });
    return b64u(out) === text ? out : undefined;
  } catch {
    return undefined;
  }
}

export const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
export const fromUtf8 = (b: Uint8Array): string => new TextDecoder("utf-8", { fatal: true }).decode(b);

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Where protocol code needs randomness, it takes one of these so tests can pin it. */
export type Random = (n: number) => Uint8Array;
export const systemRandom: Random = (n) => crypto.getRandomValues(new Uint8Array(n));
