/** One failure policy for everything that arrives by mail: a typed reason, never a crash. */

export type ProtocolErrorCode =
  | "malformed" // not a mailmeet message, or a broken armored block
  | "unsupported" // a version or kind this build does not know
  | "unsealed" // the seal does not open: wrong network key, or the bytes were changed
  | "invalid" // opened, but a field is missing or out of range
  | "stale" // older than the allowed age, or too far in the future
  | "replay"; // a nonce already seen

export class ProtocolError extends Error {
  constructor(message: string, readonly code: ProtocolErrorCode, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "ProtocolError";
  }
}
