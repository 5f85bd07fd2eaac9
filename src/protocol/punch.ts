/**
 * The UDP packets two members exchange to open a path through their NATs (hole punching) and to
 * agree, over that path, on the sockets that will carry QUIC. Bytes in, bytes out.
 *
 *   packet = magic(4) | type(1) | nonce(12) | AES-256-GCM(plaintext) | tag(16)
 *   plaintext = from(32) | to(32) | session(8) | time(8, ms, big-endian) | body (JSON object)
 *
 * The magic's first byte has the two top bits clear, so a packet is never taken for QUIC (whose
 * first byte always has the fixed bit 0x40 set, RFC 9000 §17) and is told from STUN by the rest of
 * the magic (STUN has its cookie at offset 4, RFC 5389 §6). Sealed with a key derived from the
 * network key, and naming both link keys, a packet tells a member it came from a member that means
 * us: a stranger can neither forge one nor learn the addresses inside.
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { concat, fromUtf8, type Random, systemRandom, utf8 } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";

export const PUNCH_MAGIC = Uint8Array.of(0x3a, 0x6d, 0x6d, 0x70); // ":mmp"
const HEADER = 5;
const NONCE = 12;
const TAG = 16;
const KEY = 32;
export const PUNCH_SESSION_BYTES = 8;
const FIXED = KEY + KEY + PUNCH_SESSION_BYTES + 8;
/** A punch packet stays well inside one unfragmented datagram on any path. */
export const MAX_PUNCH_PACKET = 1200;

const TYPES = { probe: 1, ack: 2, signal: 3 } as const;
export type PunchType = keyof typeof TYPES;

export interface PunchPacket {
  type: PunchType;
  /** The sender's link public key. */
  from: Uint8Array;
  /** The link public key of the member it is meant for. */
  to: Uint8Array;
  /** Random per attempt of the sender; an ack echoes the probe's in its body. */
  session: Uint8Array;
  /** Sender's clock, ms since the epoch: stale packets are dropped. */
  time: number;
  body: Record<string, unknown>;
}

/** Whether a datagram is a punch packet at all (cheap, before any decryption). */
export function isPunchPacket(data: Uint8Array): boolean {
  return data.length >= HEADER + NONCE + FIXED + TAG && data[0] === PUNCH_MAGIC[0] &&
    data[1] === PUNCH_MAGIC[1] && data[2] === PUNCH_MAGIC[2] && data[3] === PUNCH_MAGIC[3];
}

export function encodePunch(key: Uint8Array, p: PunchPacket, random: Random = systemRandom): Uint8Array {
  const header = concat(PUNCH_MAGIC, Uint8Array.of(TYPES[p.type]));
  const fixed = new Uint8Array(FIXED);
  fixed.set(p.from, 0);
  fixed.set(p.to, KEY);
  fixed.set(p.session, 2 * KEY);
  new DataView(fixed.buffer).setBigUint64(2 * KEY + PUNCH_SESSION_BYTES, BigInt(p.time));
  const plaintext = concat(fixed, utf8(JSON.stringify(p.body)));
  const nonce = random(NONCE);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(header);
  const out = concat(
    header,
    nonce,
    new Uint8Array(c.update(plaintext)),
    new Uint8Array(c.final()),
    new Uint8Array(c.getAuthTag()),
  );
  if (out.length > MAX_PUNCH_PACKET) {
    throw new RangeError(`A punch packet of ${out.length} bytes is too big.`);
  }
  return out;
}

/** Opens a punch packet; a ProtocolError for anything that is not one of ours, never a crash. */
export function decodePunch(key: Uint8Array, data: Uint8Array): PunchPacket {
  if (!isPunchPacket(data) || data.length > MAX_PUNCH_PACKET) {
    throw new ProtocolError("Not a punch packet.", "malformed");
  }
  const type = (Object.keys(TYPES) as PunchType[]).find((t) => TYPES[t] === data[4]);
  if (!type) throw new ProtocolError("A punch packet of an unknown type.", "unsupported");
  const nonce = data.subarray(HEADER, HEADER + NONCE);
  const body = data.subarray(HEADER + NONCE, data.length - TAG);
  let plaintext: Uint8Array;
  try {
    const d = createDecipheriv("aes-256-gcm", key, nonce);
    d.setAAD(data.subarray(0, HEADER));
    d.setAuthTag(data.subarray(data.length - TAG));
    plaintext = concat(new Uint8Array(d.update(body)), new Uint8Array(d.final()));
  } catch (err) {
    throw new ProtocolError("A punch packet does not open with our network key.", "unsealed", { cause: err });
  }
  const view = new DataView(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength);
  const time = Number(view.getBigUint64(2 * KEY + PUNCH_SESSION_BYTES));
  let parsed: unknown;
  try {
    parsed = JSON.parse(fromUtf8(plaintext.subarray(FIXED)));
  } catch (err) {
    throw new ProtocolError("A punch packet's body is not JSON.", "invalid", { cause: err });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError("A punch packet's body is not an object.", "invalid");
  }
  return {
    type,
    from: plaintext.slice(0, KEY),
    to: plaintext.slice(KEY, 2 * KEY),
    session: plaintext.slice(2 * KEY, 2 * KEY + PUNCH_SESSION_BYTES),
    time,
    body: parsed as Record<string, unknown>,
  };
}
