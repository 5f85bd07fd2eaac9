/**
 * Sealing with the network key: AES-256-GCM, a random 96-bit nonce per message, and the format
 * version and message kind bound as associated data, so a reply cannot be replayed as a request.
 *   sealed = version(1) | kind(1) | nonce(12) | ciphertext | tag(16)
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import { concat, type Random, systemRandom, utf8 } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";

export const FORMAT_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

function aad(version: number, kind: number): Uint8Array {
  return concat(utf8("mailmeet sealed"), new Uint8Array([version, kind]));
}

export function seal(
  key: Uint8Array,
  kind: number,
  plaintext: Uint8Array,
  random: Random = systemRandom,
): Uint8Array {
  const nonce = random(NONCE_BYTES);
  const c = createCipheriv("aes-256-gcm", key, nonce);
  c.setAAD(aad(FORMAT_VERSION, kind));
  const body = concat(
    new Uint8Array(c.update(plaintext)),
    new Uint8Array(c.final()),
    new Uint8Array(c.getAuthTag()),
  );
  return concat(new Uint8Array([FORMAT_VERSION, kind]), nonce, body);
}

/** The kind byte of a sealed blob, read before opening (to pick the decoder). */
export function sealedKind(sealed: Uint8Array): number {
  if (sealed.length < 2 + NONCE_BYTES + TAG_BYTES) {
    throw new ProtocolError("The sealed block is too short.", "malformed");
  }
  if (sealed[0] !== FORMAT_VERSION) {
    throw new ProtocolError(
      `The message uses format version ${
        sealed[0]
      }; this mailmeet understands version ${FORMAT_VERSION}. Update mailmeet.`,
      "unsupported",
    );
  }
  return sealed[1];
}

export function open(key: Uint8Array, sealed: Uint8Array): { kind: number; plaintext: Uint8Array } {
  const kind = sealedKind(sealed);
  const nonce = sealed.subarray(2, 2 + NONCE_BYTES);
  const tag = sealed.subarray(sealed.length - TAG_BYTES);
  const ct = sealed.subarray(2 + NONCE_BYTES, sealed.length - TAG_BYTES);
  try {
    const d = createDecipheriv("aes-256-gcm", key, nonce);
    d.setAAD(aad(sealed[0], kind));
    d.setAuthTag(tag);
    const plaintext = concat(new Uint8Array(d.update(ct)), new Uint8Array(d.final()));
    return { kind, plaintext };
  } catch (err) {
    throw new ProtocolError(
      "The message does not open with our network key: it was sealed with another key, or changed on the way.",
      "unsealed",
      { cause: err },
    );
  }
}
