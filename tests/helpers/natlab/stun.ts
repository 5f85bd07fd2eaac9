/**
 * The little STUN the lab's probe speaks: a Binding request, optionally with RFC 5780's
 * CHANGE-REQUEST, and the answer's mapped, origin and other addresses. Bytes in, bytes out.
 * (Test-only: the product's STUN client lives in src/net/.)
 */

export const MAGIC_COOKIE = 0x2112a442;
const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const HEADER = 20;

/** RFC 8489 §14 and RFC 5780 §7 attribute types. */
const ATTR = {
  MAPPED_ADDRESS: 0x0001,
  CHANGE_REQUEST: 0x0003,
  XOR_MAPPED_ADDRESS: 0x0020,
  RESPONSE_ORIGIN: 0x802b,
  OTHER_ADDRESS: 0x802c,
} as const;

/** RFC 5780 §7.2: ask the server to answer from its other address and/or port. */
export interface ChangeRequest {
  ip?: boolean;
  port?: boolean;
}

export interface BindingAnswer {
  transactionId: Uint8Array;
  /** XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS): where the server saw the request come from. */
  mapped?: string;
  /** RFC 5780 §7.3: the address:port the answer was sent from. */
  responseOrigin?: string;
  /** RFC 5780 §7.4: the server's other address:port. */
  otherAddress?: string;
}

export function bindingRequest(transactionId: Uint8Array, change?: ChangeRequest): Uint8Array {
  if (transactionId.length !== 12) throw new RangeError("A STUN transaction id has 12 bytes.");
  const withChange = change !== undefined;
  const buf = new Uint8Array(HEADER + (withChange ? 8 : 0));
  const v = new DataView(buf.buffer);
  v.setUint16(0, BINDING_REQUEST);
  v.setUint16(2, withChange ? 8 : 0);
  v.setUint32(4, MAGIC_COOKIE);
  buf.set(transactionId, 8);
  if (withChange) {
    v.setUint16(20, ATTR.CHANGE_REQUEST);
    v.setUint16(22, 4);
    v.setUint32(24, (change.ip ? 0x4 : 0) | (change.port ? 0x2 : 0));
  }
  return buf;
}

/** True when the datagram looks like STUN (RFC 8489 §6: two zero bits, then the magic cookie). */
export function isStun(buf: Uint8Array): boolean {
  return buf.length >= HEADER && (buf[0] & 0xc0) === 0 &&
    new DataView(buf.buffer, buf.byteOffset).getUint32(4) === MAGIC_COOKIE;
}

function readAddress(v: DataView, at: number, len: number, xor: Uint8Array | undefined): string | undefined {
  if (len < 8 || v.getUint8(at + 1) !== 0x01) return undefined; // IPv4 only, as the lab is
  let port = v.getUint16(at + 2);
  const ip = [0, 1, 2, 3].map((i) => v.getUint8(at + 4 + i));
  if (xor) {
    port ^= MAGIC_COOKIE >>> 16;
    for (let i = 0; i < 4; i++) ip[i] ^= xor[i];
  }
  return `${ip.join(".")}:${port}`;
}

/** Parses a Binding success response; undefined for anything else. */
export function parseBindingAnswer(buf: Uint8Array): BindingAnswer | undefined {
  if (!isStun(buf)) return undefined;
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  if (v.getUint16(0) !== BINDING_SUCCESS) return undefined;
  const end = Math.min(buf.length, HEADER + v.getUint16(2));
  const cookie = buf.subarray(4, 8);
  const answer: BindingAnswer = { transactionId: buf.slice(8, 20) };
  for (let at = HEADER; at + 4 <= end;) {
    const type = v.getUint16(at);
    const len = v.getUint16(at + 2);
    const value = at + 4;
    if (value + len > end) break;
    if (type === ATTR.XOR_MAPPED_ADDRESS) answer.mapped = readAddress(v, value, len, cookie);
    else if (type === ATTR.MAPPED_ADDRESS) answer.mapped ??= readAddress(v, value, len, undefined);
    else if (type === ATTR.RESPONSE_ORIGIN) answer.responseOrigin = readAddress(v, value, len, undefined);
    else if (type === ATTR.OTHER_ADDRESS) answer.otherAddress = readAddress(v, value, len, undefined);
    at = value + len + ((4 - (len % 4)) % 4); // attributes are padded to 4 bytes
  }
  return answer;
}
