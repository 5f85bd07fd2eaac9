/**
 * The group's network key: 32 random bytes shared as text ("mmk1-…" with a checksum), or a
 * passphrase stretched with scrypt. Subkeys for each use come from HKDF so one use can never
 * be replayed as another.
 */
import { createHash, hkdfSync, scrypt } from "node:crypto";
import { b64u, concat, equalBytes, fromB64u, type Random, systemRandom, utf8 } from "./bytes.ts";
import { ProtocolError } from "./errors.ts";

export const KEY_PREFIX = "mmk1-";
const CHECKSUM_BYTES = 4;

/**
 * scrypt at the strength OWASP recommends for interactive use (N=2^17, r=8, p=1; ~0.5 s, 128 MiB).
 * The salt is fixed: every member must derive the same key from the same passphrase.
 */
export const SCRYPT = { N: 2 ** 17, r: 8, p: 1, maxmem: 256 * 1024 * 1024 } as const;
const SCRYPT_SALT = "mailmeet network key v1";
export const MIN_PASSPHRASE_CHARS = 10;

export interface NetworkKey {
  /** 32 bytes; never print or log. */
  readonly secret: Uint8Array;
  /** Sealing key for everything sent by mail. */
  readonly mailKey: Uint8Array;
  /** Sealing key for the UDP packets that punch through NATs (src/protocol/punch.ts). */
  readonly punchKey: Uint8Array;
  /** Non-secret fingerprint for telling keys apart in `doctor`/`config show`. */
  readonly fingerprint: string;
  /** Where it came from, for messages: "key" or "passphrase". */
  readonly source: "key" | "passphrase";
}

function checksum(key: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(utf8("mailmeet key checksum")).update(key).digest())
    .subarray(0, CHECKSUM_BYTES);
}

export function generateKeyText(random: Random = systemRandom): string {
  const key = random(32);
  return KEY_PREFIX + b64u(concat(key, checksum(key)));
}

export function hkdf(secret: Uint8Array, info: string, length = 32): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", secret, new Uint8Array(0), utf8(info), length));
}

export function networkKeyFromSecret(secret: Uint8Array, source: "key" | "passphrase" = "key"): NetworkKey {
  if (secret.length !== 32) throw new ProtocolError("A network key must be 32 bytes.", "invalid");
  const fp = hkdf(secret, "mailmeet key fingerprint v1", 6);
  return {
    secret,
    mailKey: hkdf(secret, "mailmeet mail v1"),
    punchKey: hkdf(secret, "mailmeet punch v1"),
    fingerprint: [...fp].map((b) => b.toString(16).padStart(2, "0")).join("").replace(/(.{4})(?!$)/g, "$1-"),
    source,
  };
}

/** Accepts a key printed by `mailmeet keygen`, or any passphrase of at least MIN_PASSPHRASE_CHARS. */
export async function parseNetworkKey(text: string): Promise<NetworkKey> {
  const t = text.trim();
  if (t.startsWith(KEY_PREFIX)) {
    const raw = fromB64u(t.slice(KEY_PREFIX.length));
    if (!raw || raw.length !== 32 + CHECKSUM_BYTES) {
      throw new ProtocolError(
        `The network key "${KEY_PREFIX}…" is damaged (wrong length); copy it again from \`mailmeet keygen\`.`,
        "invalid",
      );
    }
    const key = raw.subarray(0, 32);
    if (!equalBytes(checksum(key), raw.subarray(32))) {
      throw new ProtocolError(
        `The network key "${KEY_PREFIX}…" has a typo (its checksum does not match); copy it again.`,
        "invalid",
      );
    }
    return networkKeyFromSecret(new Uint8Array(key), "key");
  }
  if ([...t].length < MIN_PASSPHRASE_CHARS) {
    throw new ProtocolError(
      `The network passphrase is too short: use at least ${MIN_PASSPHRASE_CHARS} characters, or a key from \`mailmeet keygen\`.`,
      "invalid",
    );
  }
  const secret = await new Promise<Uint8Array>((resolve, reject) =>
    scrypt(
      t.normalize("NFKC"),
      SCRYPT_SALT,
      32,
      SCRYPT,
      (err, key) => err ? reject(err) : resolve(new Uint8Array(key)),
    )
  );
  return networkKeyFromSecret(secret, "passphrase");
}
