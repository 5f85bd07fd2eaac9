/**
 * The Noise Protocol Framework (revision 34), just the one protocol mailmeet's direct link uses:
 * `Noise_IKpsk2_25519_AESGCM_SHA256`. Bytes in, bytes out: no sockets, no clock, and the
 * ephemeral keys can be supplied so the official test vectors can pin the whole state machine.
 *
 * Why IKpsk2: the dialer already knows the listener's link key (the host published it, sealed), so
 * the dialer's first message is encrypted to that key and only its holder can answer (§7.5, "IK");
 * the listener learns the dialer's key inside that first message. The psk, derived from the
 * group's network key, is mixed in by the listener's reply (§9, "psk2"), so a reply from someone
 * without the network key does not decrypt. Both ephemeral keys enter the session keys, which
 * gives forward secrecy once the handshake is over.
 *
 * The primitives come from `node:crypto` (X25519, AES-256-GCM, SHA-256, HMAC); only the state
 * machine of §5 is written here.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { Buffer } from "node:buffer";
import { concat, utf8 } from "./bytes.ts";
import { hkdf } from "./keys.ts";

export const PROTOCOL_NAME = "Noise_IKpsk2_25519_AESGCM_SHA256";
export const DHLEN = 32;
export const HASHLEN = 32;
export const KEYLEN = 32;
export const TAGLEN = 16;
/** §3: a Noise message is at most 65535 bytes. Applies to handshake messages here. */
export const MAX_MESSAGE_LEN = 65535;
/**
 * §5.1 allows nonces up to 2^64-2. The counter here is a JS number, so we refuse once it reaches
 * 2^53-1 instead: at one 1 MiB frame per nonce that is 8 ZiB in one direction, i.e. never.
 */
export const MAX_NONCE = Number.MAX_SAFE_INTEGER;
// ─── Errors ───────────────────────────────────────────────────────────────────────────────────

/** What went wrong on a direct link; the message is one sentence a user can act on. */
export type LinkErrorCode =
  | "connect" // could not open the TCP connection
  | "timeout" // the handshake or a read took too long
  | "handshake" // a handshake message was malformed or did not decrypt
  | "network_key" // the other side does not hold the network key
  | "wrong_peer" // the dialled address answered, but not with the key the host published
  | "tampered" // a transport frame failed authentication
  | "too_large" // a length prefix beyond the frame limit
  | "truncated" // the stream ended without an authenticated close
  | "protocol" // an authenticated frame that this build does not understand
  | "closed" // the link was already closed, or the socket failed
  | "exhausted"; // the nonce counter ran out (never in practice)

export class LinkError extends Error {
  constructor(message: string, readonly code: LinkErrorCode, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "LinkError";
  }
}

// ─── DH25519 (§12.1) ──────────────────────────────────────────────────────────────────────────

export interface KeyPair {
  /** 32 raw bytes, safe to publish. */
  readonly publicKey: Uint8Array;
  /** 32 raw bytes; never print or log. */
  readonly privateKey: Uint8Array;
}

// Fixed DER wrappers for raw X25519 keys (RFC 8410): node:crypto imports keys as DER or JWK only.
const PKCS8_X25519 = Uint8Array.fromHex("302e020100300506032b656e04220420");
const SPKI_X25519 = Uint8Array.fromHex("302a300506032b656e032100");

function privateKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== DHLEN) {
    throw new RangeError(`An X25519 private key is ${DHLEN} bytes, not ${raw.length}.`);
  }
  return createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, raw]),
    format: "der",
    type: "pkcs8",
  });
}

function publicKeyObject(raw: Uint8Array): KeyObject {
  if (raw.length !== DHLEN) {
    throw new RangeError(`An X25519 public key is ${DHLEN} bytes, not ${raw.length}.`);
  }
  return createPublicKey({
    key: Buffer.concat([SPKI_X25519, raw]),
    format: "der",
    type: "spki",
  });
}

function rawPublic(key: KeyObject): Uint8Array {
  const der = new Uint8Array(key.export({ format: "der", type: "spki" }));
  return der.slice(der.length - DHLEN);
}

/** A fresh X25519 key pair (the link key of one run, or an ephemeral key). */
export function generateKeyPair(): KeyPair {
  // The pair's own public key: createPublicKey(privateKey) would compute it again (~40 µs).
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
  return { privateKey: der.slice(der.length - DHLEN), publicKey: rawPublic(publicKey) };
}

/** The key pair for a known private key (test vectors, a key loaded from a file). */
export function keyPairFromPrivateKey(privateKey: Uint8Array): KeyPair {
  return {
    privateKey: new Uint8Array(privateKey),
    publicKey: rawPublic(createPublicKey(privateKeyObject(privateKey))),
  };
}

function dh(local: KeyPair, remotePublic: Uint8Array): Uint8Array {
  try {
    return new Uint8Array(
      diffieHellman({
        privateKey: privateKeyObject(local.privateKey),
        publicKey: publicKeyObject(remotePublic),
      }),
    );
  } catch (err) {
    // OpenSSL refuses low-order points (an all-zero shared secret), as §12.1 permits.
    throw new LinkError("The other side sent an invalid public key.", "handshake", { cause: err });
  }
}

// ─── CipherState (§5.1) with AESGCM (§12.3) ───────────────────────────────────────────────────

/**
 * §12.3: the 96-bit nonce is 32 bits of zeros followed by the 64-bit big-endian counter `n`.
 * Written into `iv` (12 bytes) when given, so a hot path can reuse one buffer; returns `iv`.
 * The one encoding of the nonce: src/net/frame_cipher.ts seals link frames with it too.
 */
export function aesGcmNonce(n: number, iv: Uint8Array = new Uint8Array(12)): Uint8Array {
  const hi = Math.floor(n / 0x1_0000_0000);
  const lo = n >>> 0;
  iv[0] =
    iv[1] =
    iv[2] =
    iv[3] =
      0;
  iv[4] = hi >>> 24;
  iv[5] = (hi >>> 16) & 0xff;
  iv[6] = (hi >>> 8) & 0xff;
  iv[7] = hi & 0xff;
  iv[8] = lo >>> 24;
  iv[9] = (lo >>> 16) & 0xff;
  iv[10] = (lo >>> 8) & 0xff;
  iv[11] = lo & 0xff;
  return iv;
}

/** §4.2 REKEY encrypts under maxnonce = 2^64-1 (not a safe JS integer), so its §12.3 nonce is spelled out. */
const REKEY_NONCE = Uint8Array.fromHex("00000000ffffffffffffffff");

/** Throws LinkError "exhausted" when `n` is past the nonces this build uses (MAX_NONCE). */
export function checkNonce(n: number): void {
  if (n >= MAX_NONCE) {
    throw new LinkError("This link has used up its nonces; open a new link.", "exhausted");
  }
}

function seal(k: Uint8Array, iv: Uint8Array, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const cipher = createCipheriv("aes-256-gcm", k, iv);
  if (ad.length > 0) cipher.setAAD(ad);
  return concat(cipher.update(plaintext), cipher.final(), cipher.getAuthTag());
}

/** §4.2 ENCRYPT(k, n, ad, plaintext) for AESGCM (§12.3): ciphertext || 16-byte tag. */
export function encrypt(k: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
  return seal(k, aesGcmNonce(n), ad, plaintext);
}

/** §4.2 DECRYPT(k, n, ad, ciphertext); throws LinkError "tampered" when authentication fails. */
export function decrypt(k: Uint8Array, n: number, ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  if (ciphertext.length < TAGLEN) throw new LinkError("A message is shorter than its tag.", "tampered");
  const decipher = createDecipheriv("aes-256-gcm", k, aesGcmNonce(n));
  if (ad.length > 0) decipher.setAAD(ad);
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAGLEN));
  const body = decipher.update(ciphertext.subarray(0, ciphertext.length - TAGLEN));
  try {
    // final() checks the tag; nothing decrypted is returned before it passes.
    return concat(body, decipher.final());
  } catch (err) {
    throw new LinkError("A message failed authentication.", "tampered", { cause: err });
  }
}

/**
 * §5.1 CipherState: a key (or none) and a nonce counter. Only what the spec defines; the link's
 * transport frames are sealed by src/net/frame_cipher.ts from the keys of splitKeys().
 */
export class CipherState {
  #k: Uint8Array | null = null;
  #n = 0;

  /** §5.1 InitializeKey(key), for a key given at construction. */
  constructor(k: Uint8Array | null = null) {
    this.initializeKey(k);
  }

  /** §5.1 InitializeKey(key): sets the key (null: none) and the nonce back to 0. */
  initializeKey(k: Uint8Array | null): void {
    if (k !== null && k.length !== KEYLEN) throw new RangeError(`A cipher key is ${KEYLEN} bytes.`);
    this.#k = k;
    this.#n = 0;
  }

  /** §5.1 HasKey(). */
  hasKey(): boolean {
    return this.#k !== null;
  }

  /** The next nonce this state will use. */
  get nonce(): number {
    return this.#n;
  }

  /** §5.1 SetNonce(nonce), e.g. for transport messages that may arrive out of order. */
  setNonce(n: number): void {
    if (!Number.isSafeInteger(n) || n < 0) {
      throw new RangeError(`A nonce is a whole number from 0, not ${n}.`);
    }
    this.#n = n;
  }

  /** §5.1 EncryptWithAd: ciphertext || tag, or the plaintext itself while there is no key. */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (this.#k === null) return plaintext;
    checkNonce(this.#n);
    const out = encrypt(this.#k, this.#n, ad, plaintext);
    this.#n++;
    return out;
  }

  /** §5.1 DecryptWithAd: throws LinkError "tampered" and keeps the nonce when authentication fails. */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array {
    if (this.#k === null) return ciphertext;
    checkNonce(this.#n);
    const out = decrypt(this.#k, this.#n, ad, ciphertext);
    this.#n++; // §5.1: the nonce advances only after a successful decryption
    return out;
  }

  /** §5.1 Rekey(): k = REKEY(k), the first 32 bytes of ENCRYPT(k, maxnonce, zerolen, zeros) (§4.2); n is kept. */
  rekey(): void {
    if (this.#k === null) throw new Error("CipherState has no key.");
    this.#k = seal(this.#k, REKEY_NONCE, new Uint8Array(0), new Uint8Array(KEYLEN)).slice(0, KEYLEN);
  }
}

// ─── SymmetricState (§5.2) with SHA256 (§12.5) ───────────────────────────────────────────────

const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

/**
 * §4.3 HKDF(chaining_key, input_key_material, num_outputs). The spec's construction is RFC 5869
 * HKDF with the chaining key as salt and empty info (temp_key is the PRK; output1 = T(1) =
 * HMAC(temp_key, 0x01), output2 = T(2) = HMAC(temp_key, output1 || 0x02), …), so one hkdfSync
 * call gives the outputs: ~14 µs here instead of ~110 µs for the four HMAC objects it replaces,
 * four to five times per handshake message on a newcomer's path to its first link (issue 12).
 */
function noiseHkdf(ck: Uint8Array, ikm: Uint8Array, outputs: 2 | 3): Uint8Array[] {
  const okm = new Uint8Array(hkdfSync("sha256", ikm, ck, EMPTY_INFO, outputs * HASHLEN));
  const out = [okm.subarray(0, HASHLEN), okm.subarray(HASHLEN, 2 * HASHLEN)];
  if (outputs === 3) out.push(okm.subarray(2 * HASHLEN));
  return out;
}
const EMPTY_INFO = new Uint8Array(0);

class SymmetricState {
  ck: Uint8Array;
  h: Uint8Array;
  cipher = new CipherState();

  constructor(protocolName: string) {
    const name = utf8(protocolName);
    if (name.length <= HASHLEN) {
      this.h = new Uint8Array(HASHLEN);
      this.h.set(name);
    } else {
      this.h = sha256(name);
    }
    this.ck = this.h;
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, k] = noiseHkdf(this.ck, ikm, 2);
    this.ck = ck;
    this.cipher = new CipherState(k);
  }

  mixHash(data: Uint8Array): void {
    this.h = sha256(this.h, data);
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, th, k] = noiseHkdf(this.ck, ikm, 3);
    this.ck = ck;
    this.mixHash(th);
    this.cipher = new CipherState(k);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const c = this.cipher.encryptWithAd(this.h, plaintext);
    this.mixHash(c);
    return c;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const p = this.cipher.decryptWithAd(this.h, ciphertext);
    this.mixHash(ciphertext);
    return p;
  }

  /** §5.2 Split's two keys (temp_k1, temp_k2), before they go into CipherStates. */
  splitKeys(): [Uint8Array, Uint8Array] {
    const [k1, k2] = noiseHkdf(this.ck, new Uint8Array(0), 2);
    return [k1, k2];
  }
}

// ─── HandshakeState (§5.3) for IKpsk2 (§7.5, §9) ─────────────────────────────────────────────

type Token = "e" | "s" | "ee" | "es" | "se" | "ss" | "psk";

/** `IKpsk2: <- s ... -> e, es, s, ss  <- e, ee, se, psk`. Even index: initiator writes. */
const MESSAGE_PATTERNS: readonly (readonly Token[])[] = [
  ["e", "es", "s", "ss"],
  ["e", "ee", "se", "psk"],
];

export interface InitiatorOptions {
  /** Our static (link) key pair. */
  s: KeyPair;
  /** The responder's static public key, as the host published it. */
  rs: Uint8Array;
  /** 32 bytes; for mailmeet, `deriveLinkPsk(networkKey)`. */
  psk: Uint8Array;
  prologue: Uint8Array;
  /** The ephemeral key pair; fresh random when omitted (supply one only in tests). */
  e?: KeyPair;
}

export interface ResponderOptions {
  s: KeyPair;
  psk: Uint8Array;
  prologue: Uint8Array;
  e?: KeyPair;
}

export interface SplitResult {
  /** Encrypts what we send. */
  send: CipherState;
  /** Decrypts what we receive. */
  receive: CipherState;
  /** The handshake hash h (§5.2), the same on both sides: usable for channel binding. */
  handshakeHash: Uint8Array;
}

/** The session keys of §5.2 Split, for a transport that runs its own AESGCM (src/net/frame_cipher.ts). */
export interface SplitKeys {
  /** The key of what we send; its nonces start at 0. */
  sendKey: Uint8Array;
  /** The key of what we receive; its nonces start at 0. */
  receiveKey: Uint8Array;
  /** The handshake hash h (§5.2), the same on both sides: usable for channel binding. */
  handshakeHash: Uint8Array;
}

export class HandshakeState {
  readonly initiator: boolean;
  #ss: SymmetricState;
  #s: KeyPair;
  #e: KeyPair | null;
  #rs: Uint8Array | null;
  #re: Uint8Array | null = null;
  #psk: Uint8Array;
  #index = 0;
  #failed = false;
  #split = false;

  private constructor(
    initiator: boolean,
    s: KeyPair,
    rs: Uint8Array | null,
    psk: Uint8Array,
    prologue: Uint8Array,
    e?: KeyPair,
  ) {
    if (psk.length !== 32) throw new RangeError("A Noise psk is 32 bytes.");
    if (rs !== null && rs.length !== DHLEN) throw new RangeError(`A remote static key is ${DHLEN} bytes.`);
    this.initiator = initiator;
    this.#s = s;
    this.#rs = rs === null ? null : new Uint8Array(rs);
    this.#psk = psk;
    this.#e = e ?? null;
    this.#ss = new SymmetricState(PROTOCOL_NAME);
    this.#ss.mixHash(prologue);
    // Pre-message "<- s": both sides hash the responder's static public key.
    this.#ss.mixHash(initiator ? this.#rs! : s.publicKey);
  }

  static initiator(opts: InitiatorOptions): HandshakeState {
    return new HandshakeState(true, opts.s, opts.rs, opts.psk, opts.prologue, opts.e);
  }

  static responder(opts: ResponderOptions): HandshakeState {
    return new HandshakeState(false, opts.s, null, opts.psk, opts.prologue, opts.e);
  }

  /** The other side's static public key: known from the start for the initiator, after message 1 for the responder. */
  get remoteStatic(): Uint8Array | null {
    return this.#rs;
  }

  get isComplete(): boolean {
    return this.#index >= MESSAGE_PATTERNS.length;
  }

  /** True when it is our turn to write. */
  get isMyTurn(): boolean {
    return !this.isComplete && (this.#index % 2 === 0) === this.initiator;
  }

  get handshakeHash(): Uint8Array {
    return this.#ss.h;
  }

  writeMessage(payload: Uint8Array = new Uint8Array(0)): Uint8Array {
    this.#check(true);
    const out: Uint8Array[] = [];
    for (const token of MESSAGE_PATTERNS[this.#index]) {
      switch (token) {
        case "e": {
          this.#e ??= generateKeyPair();
          out.push(this.#e.publicKey);
          this.#ss.mixHash(this.#e.publicKey);
          this.#ss.mixKey(this.#e.publicKey); // §9.2: with a psk, "e" also calls MixKey
          break;
        }
        case "s":
          out.push(this.#ss.encryptAndHash(this.#s.publicKey));
          break;
        default:
          this.#mixToken(token);
      }
    }
    out.push(this.#ss.encryptAndHash(payload));
    this.#index++;
    const message = concat(...out);
    if (message.length > MAX_MESSAGE_LEN) {
      this.#failed = true;
      throw new RangeError(`A handshake message may be at most ${MAX_MESSAGE_LEN} bytes.`);
    }
    return message;
  }

  /** Returns the payload; throws LinkError "handshake" if the message is malformed or does not decrypt. */
  readMessage(message: Uint8Array): Uint8Array {
    this.#check(false);
    try {
      if (message.length > MAX_MESSAGE_LEN) {
        throw new LinkError("The handshake message is too long.", "handshake");
      }
      let off = 0;
      const take = (n: number): Uint8Array => {
        if (message.length - off < n) throw new LinkError("The handshake message is too short.", "handshake");
        const part = message.subarray(off, off + n);
        off += n;
        return part;
      };
      for (const token of MESSAGE_PATTERNS[this.#index]) {
        switch (token) {
          case "e": {
            this.#re = new Uint8Array(take(DHLEN));
            this.#ss.mixHash(this.#re);
            this.#ss.mixKey(this.#re);
            break;
          }
          case "s":
            this.#rs = this.#ss.decryptAndHash(take(DHLEN + TAGLEN));
            break;
          default:
            this.#mixToken(token);
        }
      }
      const payload = this.#ss.decryptAndHash(take(message.length - off));
      this.#index++;
      return payload;
    } catch (err) {
      this.#failed = true;
      if (err instanceof LinkError && err.code === "handshake") throw err;
      throw new LinkError("A handshake message did not decrypt.", "handshake", { cause: err });
    }
  }

  /** §5.2 Split, oriented for our role, as two CipherStates; only once the handshake is complete. */
  split(): SplitResult {
    const { sendKey, receiveKey, handshakeHash } = this.splitKeys();
    return { send: new CipherState(sendKey), receive: new CipherState(receiveKey), handshakeHash };
  }

  /**
   * §5.2 Split, oriented for our role, as the two keys: for a transport that seals with its own
   * AESGCM implementation and nonce counters. Either this or split(), once.
   */
  splitKeys(): SplitKeys {
    if (!this.isComplete || this.#failed) throw new Error("The handshake is not complete.");
    if (this.#split) throw new Error("split() may be called once: the chaining key is gone.");
    this.#split = true;
    const [k1, k2] = this.#ss.splitKeys();
    const handshakeHash = this.#ss.h;
    // Forward secrecy: drop the ephemeral key and chaining key now that the session keys exist.
    this.#e = null;
    this.#ss.ck = new Uint8Array(0);
    return this.initiator
      ? { sendKey: k1, receiveKey: k2, handshakeHash }
      : { sendKey: k2, receiveKey: k1, handshakeHash };
  }

  #check(writing: boolean): void {
    if (this.#failed) throw new LinkError("The handshake already failed.", "handshake");
    if (this.isComplete) throw new Error("The handshake is already complete.");
    if (this.isMyTurn !== writing) {
      throw new Error(writing ? "It is not our turn to write." : "It is not our turn to read.");
    }
  }

  #mixToken(token: "ee" | "es" | "se" | "ss" | "psk"): void {
    if (token === "psk") {
      this.#ss.mixKeyAndHash(this.#psk);
      return;
    }
    // "es" is DH(initiator's e, responder's s); "se" is DH(initiator's s, responder's e).
    const localKind = this.initiator ? token[0] : token[1];
    const remoteKind = this.initiator ? token[1] : token[0];
    const local = localKind === "e" ? this.#e : this.#s;
    const remote = remoteKind === "e" ? this.#re : this.#rs;
    if (local === null || remote === null) throw new Error(`Token ${token} is missing a key.`);
    this.#ss.mixKey(dh(local, remote));
  }
}

// ─── mailmeet's use of it ─────────────────────────────────────────────────────────────────────

/** The prologue mailmeet binds into every link handshake; a different version never interoperates. */
export const LINK_PROLOGUE: Uint8Array = utf8("mailmeet link v1");

/** The Noise psk for the direct link: HKDF-SHA256(networkKey, salt = empty, info = "mailmeet link psk v1"). */
export function deriveLinkPsk(networkKey: Uint8Array): Uint8Array {
  if (networkKey.length !== 32) throw new RangeError("A network key is 32 bytes.");
  return hkdf(networkKey, "mailmeet link psk v1", 32);
}
