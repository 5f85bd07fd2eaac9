/**
 * AES-256-GCM for the link's transport frames, by one of two backends chosen once per channel (as
 * holepunch's secret-stream picks its Push/Pull once), never per call:
 *
 * - native: OpenSSL's libcrypto over FFI (src/net/aead.ts), when FFI is permitted and the library
 *   loads. It seals several pieces (a batch of mux messages) straight into the buffer that goes to
 *   the socket and opens a frame in the buffer it was read into, at several GB/s.
 * - portable: Deno's built-ins, needing no permission (most Windows and macOS machines have no
 *   OpenSSL 3; a run may leave out --allow-ffi). node:crypto below ASYNC_AEAD_THRESHOLD, WebCrypto
 *   above it: node:crypto is cheaper per call, WebCrypto several times faster on large inputs and
 *   off the main thread (measured in Deno: node:crypto ~180 MB/s flat, WebCrypto ~600 MB/s at 1 MiB).
 *
 * Both are Noise's AESGCM (§12.3) with empty associated data under the nonce of aesGcmNonce, one
 * counter per direction starting at 0: the same bytes on the wire, so the two ends of a link need
 * not use the same backend, and one end may change backend between two frames.
 *
 * Loading libcrypto costs 8–10 ms of blocked event loop (Deno.dlopen and OpenSSL's set-up). A link
 * made before it loaded does not wait for it: it starts portable, the load is scheduled for
 * NATIVE_LOAD_DELAY_MS later, and from the first frame after the load the link is native, its
 * nonces going on where the portable ones stopped. On a newcomer's path to its first link the load
 * cost bench meet 7–9 ms of its 30 ms from dial to connected (issue 12).
 */
import { aesGcmNonce, checkNonce, decrypt, encrypt, LinkError, TAGLEN } from "../protocol/noise.ts";
import { nativeAeadAvailable, nativeAeadLoaded, nativeAeadMayLoad, NativeGcm } from "./aead.ts";
import { concat } from "../protocol/bytes.ts";

export type FrameCipherKind = "native" | "portable";

interface Nonces {
  send: number;
  receive: number;
}

/** Plaintexts shorter than this are sealed by node:crypto, longer ones by WebCrypto (portable backend). */
export const ASYNC_AEAD_THRESHOLD = 8 * 1024;
/** Sealed frames at least this large come back as two pieces (headroom, ciphertext) instead of being copied into one. */
const SEPARATE_HEADROOM_FROM = 64 * 1024;
/** Native frames at least this large are sealed into reusable buffers of the largest frame's size. */
const POOL_FROM = 64 * 1024;
const POOL_KEEP = 2;
/**
 * Smaller native frames are sealed into reusable buffers of this size: a fresh ArrayBuffer costs
 * about 1 µs (an off-heap allocation V8 must track), a third of sealing a small frame.
 */
const SMALL_POOL_BYTES = 16 * 1024;
const SMALL_POOL_KEEP = 4;
const EMPTY = new Uint8Array(0);

export interface FrameCipherOptions {
  /** The key of what we send (HandshakeState.splitKeys()); nonces start at 0. */
  sendKey: Uint8Array;
  /** The key of what we receive; nonces start at 0. */
  receiveKey: Uint8Array;
  /** Bytes left unwritten in front of every sealed frame, for the caller's length prefix. */
  headroom: number;
  /** The most plaintext one seal() takes; sizes the buffers the native backend reuses. */
  maxPlaintext: number;
}

/** Both directions of one link's frames. Not for overlapping open() calls (seal() may overlap: it takes its nonce at once). */
export interface FrameCipher {
  readonly kind: FrameCipherKind;
  /**
   * Seals the concatenation of `parts` under the next send nonce. Returns the pieces to write, in
   * order: `headroom` bytes for the caller to fill, then ciphertext||tag. Throws (or rejects with)
   * LinkError "exhausted" when the nonces ran out.
   */
  seal(parts: readonly Uint8Array[]): Uint8Array[] | Promise<Uint8Array[]>;
  /** Takes back the pieces of a sealed frame once the socket took them, to seal later frames into. */
  release(frame: readonly Uint8Array[]): void;
  /**
   * Opens ciphertext||tag under the next receive nonce, which advances only on success. May
   * decrypt in place, leaving `ciphertext` garbage. Throws (or rejects with) LinkError "tampered"
   * when authentication fails, "exhausted" when the nonces ran out.
   */
  open(ciphertext: Uint8Array): Uint8Array | Promise<Uint8Array>;
}

/** A link made before libcrypto loaded has it loaded this long after, off its handshake's path. */
export const NATIVE_LOAD_DELAY_MS = 100;

/** True when this process can use the native backend (FFI permitted, libcrypto loaded); loads it on the first call. */
export function nativeFrameCipherAvailable(): boolean {
  return nativeAeadAvailable();
}

let loadScheduled = false;

/** Loads libcrypto NATIVE_LOAD_DELAY_MS from now (once per process), for the links made meanwhile. */
function loadNativeSoon(): void {
  if (loadScheduled) return;
  loadScheduled = true;
  setTimeout(nativeAeadAvailable, NATIVE_LOAD_DELAY_MS);
}

/**
 * The cipher for one link. Without `kind`: native where libcrypto is loaded; where it may load but
 * has not yet, portable now and native once it has (loadNativeSoon); portable otherwise. Asking
 * for "native" loads it at once, and where it cannot load is a programming error (tests ask for
 * each backend).
 */
export function createFrameCipher(opts: FrameCipherOptions, kind?: FrameCipherKind): FrameCipher {
  if (kind === "native" || (kind === undefined && nativeAeadLoaded())) {
    const native = NativeFrameCipher.create(opts);
    if (native !== null) return native;
    if (kind === "native") throw new Error("The native frame cipher needs FFI permission and libcrypto.");
  }
  if (kind === undefined && nativeAeadMayLoad()) {
    loadNativeSoon();
    return new UpgradingFrameCipher(opts, nativeAeadLoaded, nativeAeadAvailable);
  }
  return new PortableFrameCipher(opts);
}

/**
 * Portable until `ready()` says libcrypto is loaded, then native, each direction switching on its
 * own: sealing at the next seal() (its nonce is taken at the call, even by a WebCrypto seal still
 * in flight, and the channel writes frames in the order it sealed them), opening at the next
 * open() (opens come one at a time, so the portable one before it has settled its nonce). Each
 * goes on from the nonce the portable backend reached in that direction.
 *
 * A bulk frame (ASYNC_AEAD_THRESHOLD bytes or more) does not wait for the scheduled load: it calls
 * `load()` there and then. A transfer pays the load's 8–10 ms once, where it does not count, and
 * never runs on WebCrypto, whose fresh 1 MiB outputs raised a 1 GiB send's peak RSS from 86 to 111 MB
 * (bench link, one run each).
 */
export class UpgradingFrameCipher implements FrameCipher {
  readonly #opts: FrameCipherOptions;
  readonly #portable: PortableFrameCipher;
  #native: NativeFrameCipher | null = null;
  readonly #ready: () => boolean;
  readonly #load: () => boolean;
  #stayPortable = false;
  #sealsNative = false;
  #opensNative = false;

  constructor(opts: FrameCipherOptions, ready: () => boolean, load: () => boolean = ready) {
    this.#opts = opts;
    this.#portable = new PortableFrameCipher(opts);
    this.#ready = ready;
    this.#load = load;
  }

  /** What seals the frames now (opening switches at its own next call). */
  get kind(): FrameCipherKind {
    return this.#sealsNative ? "native" : "portable";
  }

  #nativeNow(bytes: number): NativeFrameCipher | null {
    if (
      this.#native === null && !this.#stayPortable &&
      (this.#ready() || (bytes >= ASYNC_AEAD_THRESHOLD && this.#load()))
    ) {
      this.#native = NativeFrameCipher.create(this.#opts);
      this.#stayPortable = this.#native === null; // loaded, yet no context
    }
    return this.#native;
  }

  seal(parts: readonly Uint8Array[]): Uint8Array[] | Promise<Uint8Array[]> {
    if (!this.#sealsNative) {
      let bytes = 0;
      for (const p of parts) bytes += p.length;
      const native = this.#nativeNow(bytes);
      if (native === null) return this.#portable.seal(parts);
      native.continueFrom({ send: this.#portable.nonces().send });
      this.#sealsNative = true;
    }
    return this.#native!.seal(parts);
  }

  release(frame: readonly Uint8Array[]): void {
    (this.#sealsNative ? this.#native! : this.#portable).release(frame);
  }

  open(ciphertext: Uint8Array): Uint8Array | Promise<Uint8Array> {
    if (!this.#opensNative) {
      const native = this.#nativeNow(ciphertext.length - TAGLEN);
      if (native === null) return this.#portable.open(ciphertext);
      native.continueFrom({ receive: this.#portable.nonces().receive });
      this.#opensNative = true;
    }
    return this.#native!.open(ciphertext);
  }
}

function tampered(cause?: unknown): LinkError {
  return new LinkError("A message failed authentication.", "tampered", { cause });
}

// ─── native: libcrypto ───────────────────────────────────────────────────────────────────────

class NativeFrameCipher implements FrameCipher {
  readonly kind = "native";
  readonly #tx: NativeGcm;
  readonly #rx: NativeGcm;
  readonly #headroom: number;
  /** The byte size of a reusable buffer: the largest frame. */
  readonly #poolBytes: number;
  /**
   * Full-size frame buffers whose write completed, for the next frames: a fresh 1 MiB buffer per
   * frame costs an mmap, page faults and zeroing, and makes the garbage that sets the peak RSS.
   */
  #pool: ArrayBuffer[] = [];
  /** The same for frames up to SMALL_POOL_BYTES: a chat line's or a game's packet. */
  #small: ArrayBuffer[] = [];
  #sendN = 0;
  #receiveN = 0;

  private constructor(tx: NativeGcm, rx: NativeGcm, opts: FrameCipherOptions) {
    this.#tx = tx;
    this.#rx = rx;
    this.#headroom = opts.headroom;
    this.#poolBytes = opts.headroom + opts.maxPlaintext + TAGLEN;
  }

  /** Null when libcrypto cannot be used here (both directions or neither). */
  static create(opts: FrameCipherOptions): NativeFrameCipher | null {
    const tx = NativeGcm.create(opts.sendKey);
    const rx = tx ? NativeGcm.create(opts.receiveKey) : null;
    if (tx === null || rx === null) {
      tx?.free();
      return null;
    }
    return new NativeFrameCipher(tx, rx, opts);
  }

  /** Takes over a direction from another backend: its next nonce. */
  continueFrom(next: Partial<Nonces>): void {
    if (next.send !== undefined) this.#sendN = next.send;
    if (next.receive !== undefined) this.#receiveN = next.receive;
  }

  seal(parts: readonly Uint8Array[]): Uint8Array[] {
    checkNonce(this.#sendN);
    let len = 0;
    for (const p of parts) len += p.length;
    // headroom, then the parts sealed in place after it: one buffer, one write
    const size = this.#headroom + len + TAGLEN;
    let out: Uint8Array;
    if (size <= SMALL_POOL_BYTES) {
      out = new Uint8Array(this.#small.pop() ?? new ArrayBuffer(SMALL_POOL_BYTES), 0, size);
    } else {
      const pooled = size >= POOL_FROM && size <= this.#poolBytes;
      out = pooled && this.#pool.length > 0
        ? new Uint8Array(this.#pool.pop()!, 0, size)
        : new Uint8Array(new ArrayBuffer(pooled ? this.#poolBytes : size), 0, size);
    }
    this.#tx.seal(this.#sendN, parts, out.subarray(this.#headroom));
    this.#sendN++;
    return [out];
  }

  release(frame: readonly Uint8Array[]): void {
    if (frame.length !== 1) return;
    const buf = frame[0].buffer as ArrayBuffer;
    if (buf.byteLength === SMALL_POOL_BYTES) {
      if (this.#small.length < SMALL_POOL_KEEP) this.#small.push(buf);
    } else if (buf.byteLength === this.#poolBytes && this.#pool.length < POOL_KEEP) {
      this.#pool.push(buf);
    }
  }

  open(ciphertext: Uint8Array): Uint8Array {
    checkNonce(this.#receiveN);
    const opened = this.#rx.openInPlace(this.#receiveN, ciphertext);
    if (opened === null) throw tampered();
    this.#receiveN++; // §5.1: the nonce advances only after a successful decryption
    return opened;
  }
}

// ─── portable: node:crypto and WebCrypto ─────────────────────────────────────────────────────

class PortableFrameCipher implements FrameCipher {
  readonly kind = "portable";
  readonly #sendKey: Uint8Array;
  readonly #receiveKey: Uint8Array;
  readonly #headroom: number;
  #webSend: Promise<CryptoKey> | null = null;
  #webReceive: Promise<CryptoKey> | null = null;
  #sendN = 0;
  #receiveN = 0;

  constructor(opts: FrameCipherOptions) {
    this.#sendKey = opts.sendKey;
    this.#receiveKey = opts.receiveKey;
    this.#headroom = opts.headroom;
  }

  /** The next nonce of each direction (what a backend taking over starts from). */
  nonces(): Nonces {
    return { send: this.#sendN, receive: this.#receiveN };
  }

  seal(parts: readonly Uint8Array[]): Uint8Array[] | Promise<Uint8Array[]> {
    checkNonce(this.#sendN);
    const n = this.#sendN++;
    const plaintext = parts.length === 1 ? parts[0] : concat(...parts);
    if (plaintext.length < ASYNC_AEAD_THRESHOLD) {
      return this.#withHeadroom(encrypt(this.#sendKey, n, EMPTY, plaintext));
    }
    this.#webSend ??= webKey(this.#sendKey);
    return this.#webSend
      .then((key) =>
        crypto.subtle.encrypt(
          { name: "AES-GCM", iv: aesGcmNonce(n) as Uint8Array<ArrayBuffer> },
          key,
          plaintext as Uint8Array<ArrayBuffer>,
        )
      )
      .then((sealed) => this.#withHeadroom(new Uint8Array(sealed)));
  }

  release(): void {
    // fresh buffers each frame: node:crypto and WebCrypto allocate their own output
  }

  open(ciphertext: Uint8Array): Uint8Array | Promise<Uint8Array> {
    const n = this.#receiveN;
    checkNonce(n);
    if (ciphertext.length - TAGLEN < ASYNC_AEAD_THRESHOLD) {
      const out = decrypt(this.#receiveKey, n, EMPTY, ciphertext); // throws LinkError "tampered"
      this.#receiveN = n + 1;
      return out;
    }
    this.#webReceive ??= webKey(this.#receiveKey);
    return this.#webReceive
      .then((key) =>
        crypto.subtle.decrypt(
          { name: "AES-GCM", iv: aesGcmNonce(n) as Uint8Array<ArrayBuffer> },
          key,
          ciphertext as Uint8Array<ArrayBuffer>,
        )
      )
      .then((plain) => {
        this.#receiveN = n + 1;
        return new Uint8Array(plain);
      }, (err) => {
        throw tampered(err);
      });
  }

  #withHeadroom(sealed: Uint8Array): Uint8Array[] {
    if (sealed.length >= SEPARATE_HEADROOM_FROM) return [new Uint8Array(this.#headroom), sealed];
    const out = new Uint8Array(this.#headroom + sealed.length);
    out.set(sealed, this.#headroom);
    return [out];
  }
}

function webKey(raw: Uint8Array): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", raw as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
    "encrypt",
    "decrypt",
  ]);
}
