/**
 * The mail a mailmeet message travels in (patent Fig. 5/6): a subject carrying the marker, one
 * sentence for a person who opens it by mistake (【0051】), and one armored sealed block. Nothing
 * else: no address, user id or e-mail address appears in clear.
 */
import type { NetworkKey } from "./keys.ts";
import { decodeMessage, encodeMessage, type Message } from "./messages.ts";
import { open, seal } from "./seal.ts";
import { ProtocolError } from "./errors.ts";
import { type Random, systemRandom } from "./bytes.ts";

export const DEFAULT_MARKER = "mailmeet rendezvous";
export const ARMOR_BEGIN = "-----BEGIN MAILMEET MESSAGE-----";
export const ARMOR_END = "-----END MAILMEET MESSAGE-----";
const ARMOR_WIDTH = 64;
/** Ours are a few KiB; a bigger block is not ours and is not worth decoding. */
export const MAX_ARMOR_CHARS = 128 * 1024;

export const HUMAN_NOTE =
  "This message was sent automatically by mailmeet, a program that helps a group of friends' computers find " +
  "each other over the Internet. Its content is sealed for the members of that group. If it reached you by " +
  "mistake, you can safely delete it.";

/** The body text of a mail carrying `msg`. */
export function sealToText(key: NetworkKey, msg: Message, random: Random = systemRandom): string {
  const { kind, bytes } = encodeMessage(msg);
  const b64 = seal(key.mailKey, kind, bytes, random).toBase64();
  const lines = b64.match(new RegExp(`.{1,${ARMOR_WIDTH}}`, "g")) ?? [];
  return `${HUMAN_NOTE}\r\n\r\n${ARMOR_BEGIN}\r\n${lines.join("\r\n")}\r\n${ARMOR_END}\r\n`;
}

/** Finds the armored block in a body, opens it and decodes the message inside. */
export function openText(key: NetworkKey, text: string): Message {
  const start = text.indexOf(ARMOR_BEGIN);
  const end = start < 0 ? -1 : text.indexOf(ARMOR_END, start);
  if (start < 0 || end < 0) throw new ProtocolError("The mail holds no mailmeet block.", "malformed");
  const inner = text.slice(start + ARMOR_BEGIN.length, end).replace(/[\s>]+/g, "");
  if (inner.length > MAX_ARMOR_CHARS) {
    throw new ProtocolError("The mailmeet block is too large.", "malformed");
  }
  let sealed: Uint8Array;
  try {
    sealed = Uint8Array.fromBase64(inner);
  } catch (err) {
    throw new ProtocolError("The mailmeet block is not valid base64.", "malformed", { cause: err });
  }
  const { kind, plaintext } = open(key.mailKey, sealed);
  return decodeMessage(kind, plaintext);
}
