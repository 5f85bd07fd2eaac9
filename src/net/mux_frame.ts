/**
 * The wire format of the mux (src/net/mux.ts): bytes in, bytes out, no state.
 *
 * One sealed frame of the link carries a batch of messages, each
 * `type u8 | id u32 | length u32 | payload` (big-endian). A message never spans two frames: the
 * link delivers whole frames, so a frame that ends inside a message is malformed, not "partial".
 * Where the transport has its own datagrams (QUIC), each is `channel u32 | payload`.
 *
 * Kept as in the first version of the mux, byte for byte: peers of every version interoperate.
 */
import { fromUtf8, utf8 } from "../protocol/bytes.ts";

/** Message types (the first byte of a message). */
export const MSG = {
  /** JSON `{"p": protocol, "m": meta}`: the sender opens stream `id`. */
  OPEN: 1,
  /** Bytes of stream `id`, within the credit the receiver granted. */
  DATA: 2,
  /** u32: the sender may send this many more bytes of stream `id`. */
  CREDIT: 3,
  /** Empty: the sender will send no more on stream `id` (half-close). */
  FIN: 4,
  /** Reason (UTF-8): stream `id` is dead both ways. */
  RESET: 5,
  /** One datagram on channel `id`. */
  DGRAM: 6,
  /** Empty, id 0: "still here". */
  PING: 7,
} as const;

/** type u8 | id u32 | length u32 */
export const HEADER_BYTES = 9;
/** A datagram on the transport's own lane: channel u32 | payload. */
export const LANE_HEADER_BYTES = 4;
/** Reasons and OPEN metadata are small. */
export const MAX_CONTROL_PAYLOAD = 16 * 1024;
/** A reset reason is cut to this many characters (UTF-16 units) before it is sent. */
const MAX_REASON_CHARS = 1000;

export type MuxFrameErrorCode =
  | "truncated" // a frame ended inside a message header
  | "overrun" // a message's length runs past the end of its frame
  | "unknown_type" // a message type this version does not know
  | "malformed" // a payload that is not what its type requires
  | "too_large"; // a payload over its limit

/** A frame the mux must refuse: the peer broke the protocol (or is not a mux at all). */
export class MuxFrameError extends Error {
  /** `detail` names what was wrong, in words that fit after "the link was dropped:". */
  constructor(readonly detail: string, readonly code: MuxFrameErrorCode) {
    super(`A mux frame is malformed: ${detail}.`);
    this.name = "MuxFrameError";
  }
}

const EMPTY = new Uint8Array(0);

function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function writeU32(b: Uint8Array, at: number, n: number): void {
  b[at] = n >>> 24;
  b[at + 1] = n >>> 16;
  b[at + 2] = n >>> 8;
  b[at + 3] = n;
}

// ─── Encoding ────────────────────────────────────────────────────────────────────────────────

/** Writes a message header into `h` (at least HEADER_BYTES long), without allocating. */
export function writeHeader(h: Uint8Array, type: number, id: number, length: number): void {
  h[0] = type;
  writeU32(h, 1, id);
  writeU32(h, 5, length);
}

export function encodeHeader(type: number, id: number, length: number): Uint8Array {
  const h = new Uint8Array(HEADER_BYTES);
  writeHeader(h, type, id, length);
  return h;
}

/** An OPEN payload. Throws RangeError when the metadata is over MAX_CONTROL_PAYLOAD. */
export function encodeOpen(protocol: string, meta: unknown): Uint8Array {
  const body = utf8(JSON.stringify({ p: protocol, m: meta }));
  if (body.length > MAX_CONTROL_PAYLOAD) throw new RangeError("The stream metadata is too large.");
  return body;
}

export function encodeCredit(n: number): Uint8Array {
  const body = new Uint8Array(4);
  writeU32(body, 0, n);
  return body;
}

export function encodeReset(reason: string): Uint8Array {
  return utf8(reason.slice(0, MAX_REASON_CHARS));
}

/** A datagram for the transport's own lane. */
export function encodeLaneDatagram(channel: number, data: Uint8Array): Uint8Array {
  const d = new Uint8Array(LANE_HEADER_BYTES + data.length);
  writeU32(d, 0, channel);
  d.set(data, LANE_HEADER_BYTES);
  return d;
}

// ─── Decoding ────────────────────────────────────────────────────────────────────────────────

/**
 * Walks the messages of one frame without allocating (the mux keeps one and reuses it):
 * `start(frame)`, then `while (reader.next())` read `type`, `id` and `body` (a view of the frame).
 * Throws MuxFrameError at the first malformed message; the ones before it were already returned,
 * as a receiver handles them in order.
 */
export class MessageReader {
  type = 0;
  id = 0;
  body: Uint8Array = EMPTY;
  #frame: Uint8Array = EMPTY;
  #at = 0;

  start(frame: Uint8Array): void {
    this.#frame = frame;
    this.#at = 0;
  }

  next(): boolean {
    const f = this.#frame;
    let at = this.#at;
    if (at >= f.length) {
      // Let go of the frame: its buffer goes back to the link for a later one.
      this.#frame = this.body = EMPTY;
      return false;
    }
    if (f.length - at < HEADER_BYTES) throw new MuxFrameError("a message header was cut short", "truncated");
    const type = f[at];
    const id = readU32(f, at + 1);
    const length = readU32(f, at + 5);
    at += HEADER_BYTES;
    if (length > f.length - at) throw new MuxFrameError("a message ran past its frame", "overrun");
    if (type < MSG.OPEN || type > MSG.PING) {
      throw new MuxFrameError(`unknown message type ${type}`, "unknown_type");
    }
    if (type === MSG.CREDIT && length !== 4) {
      throw new MuxFrameError("a credit message is not 4 bytes", "malformed");
    }
    this.type = type;
    this.id = id;
    this.body = f.subarray(at, at + length);
    this.#at = at + length;
    return true;
  }
}

/** An OPEN payload: the protocol ("" when it is not a string) and the metadata. */
export function decodeOpen(body: Uint8Array): { protocol: string; meta: unknown } {
  if (body.length > MAX_CONTROL_PAYLOAD) {
    throw new MuxFrameError("a stream opened with metadata over 16 KiB", "too_large");
  }
  let p: unknown;
  let m: unknown;
  try {
    ({ p, m } = JSON.parse(fromUtf8(body)));
  } catch {
    throw new MuxFrameError("a stream opened with metadata that is not JSON", "malformed");
  }
  return { protocol: typeof p === "string" ? p : "", meta: m };
}

/** A CREDIT payload (MessageReader already checked it is 4 bytes). */
export function decodeCredit(body: Uint8Array): number {
  return readU32(body, 0);
}

/** A RESET payload. Throws TypeError when it is not UTF-8. */
export function decodeReset(body: Uint8Array): string {
  return fromUtf8(body);
}

/** The channel of a lane datagram, or -1 when it is too short to have one (it is then ignored). */
export function laneChannel(d: Uint8Array): number {
  return d.length < LANE_HEADER_BYTES ? -1 : readU32(d, 0);
}
