/**
 * AES-256-GCM for the link's transport frames, through OpenSSL's libcrypto (FFI) when it can be
 * loaded, so the hot path seals and opens in place at several GB/s.
 *
 * Why: in this Deno, node:crypto AES-GCM runs at ~160 MB/s and WebCrypto at ~600 MB/s per 1 MiB
 * call (with 30–60 µs per call whatever the size), while libcrypto with AES-NI seals a 1 MiB frame
 * in ~0.3 ms (~3.5 GB/s) and a 1 KiB one in under 1 µs. FFI also lets a frame be sealed from
 * several pieces (a batch of mux messages) straight into the buffer that goes to the socket, and
 * opened in the buffer it was read into: no copies besides the cipher's own pass.
 *
 * The bytes are the same AES-256-GCM with the Noise nonce (§12.3, aesGcmNonce) as CipherState's,
 * so either side may use either implementation. Only src/net/frame_cipher.ts uses this binding: its
 * native backend, chosen when libcrypto loads here; when it does not (no FFI permission, no
 * OpenSSL, MAILMEET_NATIVE_CRYPTO=0) the portable backend seals the same bytes.
 */
import { aesGcmNonce, TAGLEN } from "../protocol/noise.ts";

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
/** seal() joins its pieces when they come to at most this much, and seals them with one call. */
const JOIN_UP_TO = 16 * 1024;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_EncryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  // The same two inits for a new nonce only (no cipher, no key): a null "buffer" argument takes
  // Deno's slow FFI path, a null "pointer" does not.
  EncryptInitNonce: {
    name: "EVP_EncryptInit_ex",
    parameters: ["pointer", "pointer", "pointer", "pointer", "buffer"],
    result: "i32",
  },
  DecryptInitNonce: {
    name: "EVP_DecryptInit_ex",
    parameters: ["pointer", "pointer", "pointer", "pointer", "buffer"],
    result: "i32",
  },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** Where libcrypto 3 (or 1.1: same EVP calls) usually is. macOS's bare libcrypto.dylib aborts when loaded, so only OpenSSL's own. */
function candidates(): string[] {
  switch (Deno.build.os) {
    case "darwin":
      return [
        "libcrypto.3.dylib",
        "/opt/homebrew/opt/openssl@3/lib/libcrypto.3.dylib",
        "/usr/local/opt/openssl@3/lib/libcrypto.3.dylib",
      ];
    case "windows":
      return ["libcrypto-3-x64.dll", "libcrypto-3.dll"];
    default:
      return ["libcrypto.so.3", "libcrypto.so.1.1"];
  }
}

let loaded: Lib | null | undefined;

/** Whether this process may try libcrypto at all: FFI permitted and not turned off. Loads nothing. */
function permitted(): boolean {
  try {
    if (Deno.env.get("MAILMEET_NATIVE_CRYPTO") === "0") return false;
  } catch {
    // no env permission: the default (try native) applies
  }
  try {
    return Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

function load(): Lib | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (!permitted()) return null;
  for (const path of candidates()) {
    try {
      loaded = Deno.dlopen(path, SYMBOLS).symbols;
      break;
    } catch {
      // try the next name
    }
  }
  if (loaded !== null) initialize(loaded);
  return loaded;
}

/**
 * OpenSSL sets itself up on the first cipher init (providers, CPU features; 2–3 ms here). Done
 * with the load, on a throwaway key, so that cost falls where the load is scheduled (while a
 * handshake message is in flight, or when the node is idle: src/net/link_warmup.ts) and not on
 * the first link's path from its last handshake message to its first frame.
 */
function initialize(lib: Lib): void {
  const ctx = lib.EVP_CIPHER_CTX_new();
  if (ctx === null) return;
  lib.EVP_EncryptInit_ex(ctx, lib.EVP_aes_256_gcm(), null, new Uint8Array(32), new Uint8Array(12));
  lib.EVP_CIPHER_CTX_free(ctx);
}

/** True when frames will be sealed by libcrypto in this process; loads it on the first call (5–15 ms). */
export function nativeAeadAvailable(): boolean {
  return load() !== null;
}

/** True once libcrypto is loaded here (cheap: loads nothing, for a check on every frame). */
export function nativeAeadLoaded(): boolean {
  return loaded !== undefined && loaded !== null;
}

/** True when libcrypto is loaded, or not tried yet and permitted (it may well load). Loads nothing. */
export function nativeAeadMayLoad(): boolean {
  return loaded === undefined ? permitted() : loaded !== null;
}

const freeCtx = new FinalizationRegistry<{ lib: Lib; ptrs: Deno.PointerValue[] }>(({ lib, ptrs }) => {
  for (const p of ptrs) lib.EVP_CIPHER_CTX_free(p);
});

/** One direction's AES-256-GCM key, with the key schedule set up once. Not safe for overlapping use (none is possible: calls are synchronous). */
export class NativeGcm {
  readonly #lib: Lib;
  readonly #enc: Deno.PointerValue;
  readonly #dec: Deno.PointerValue;
  readonly #iv = new Uint8Array(12);
  readonly #outl = new Int32Array(1);
  readonly #outlBytes = new Uint8Array(this.#outl.buffer);
  #freed = false;

  private constructor(lib: Lib, key: Uint8Array) {
    this.#lib = lib;
    this.#enc = lib.EVP_CIPHER_CTX_new();
    this.#dec = lib.EVP_CIPHER_CTX_new();
    if (this.#enc === null || this.#dec === null) throw new Error("EVP_CIPHER_CTX_new failed");
    const cipher = lib.EVP_aes_256_gcm();
    if (
      lib.EVP_EncryptInit_ex(this.#enc, cipher, null, key as Uint8Array<ArrayBuffer>, null) !== 1 ||
      lib.EVP_DecryptInit_ex(this.#dec, cipher, null, key as Uint8Array<ArrayBuffer>, null) !== 1
    ) {
      throw new Error("EVP_*Init_ex failed");
    }
    freeCtx.register(this, { lib, ptrs: [this.#enc, this.#dec] }, this);
  }

  /** A cipher for `key`, or null when libcrypto cannot be used here. */
  static create(key: Uint8Array): NativeGcm | null {
    const lib = load();
    if (lib === null) return null;
    try {
      return new NativeGcm(lib, key);
    } catch {
      return null;
    }
  }

  #nonce(n: number): Uint8Array<ArrayBuffer> {
    aesGcmNonce(n, this.#iv);
    return this.#iv;
  }

  #live(): void {
    if (this.#freed) throw new Error("This cipher was freed.");
  }

  /**
   * Encrypts the concatenation of `parts` under nonce `n` into `out`, which must be exactly the
   * total length + TAGLEN (ciphertext, then tag). `out` must not overlap a part, except that a
   * single part may be `out`'s own prefix (in-place).
   */
  seal(n: number, parts: readonly Uint8Array[], out: Uint8Array): void {
    this.#live();
    const lib = this.#lib;
    const ctx = this.#enc;
    let off = 0;
    let ok = lib.EncryptInitNonce(ctx, null, null, null, this.#nonce(n)) === 1;
    if (parts.length > 1 && out.length - TAGLEN <= JOIN_UP_TO) {
      // Small pieces (a mux batch's headers and a short message) are copied together first and
      // sealed in place: one call into libcrypto instead of one per piece.
      for (const p of parts) {
        out.set(p, off);
        off += p.length;
      }
      parts = [out.subarray(0, off)];
      off = 0;
    }
    for (const p of parts) {
      if (!ok) break;
      if (p.length === 0) continue;
      ok = lib.EVP_EncryptUpdate(
        ctx,
        (off === 0 ? out : out.subarray(off)) as Uint8Array<ArrayBuffer>,
        this.#outlBytes,
        p as Uint8Array<ArrayBuffer>,
        p.length,
      ) === 1;
      off += this.#outl[0];
    }
    if (off + TAGLEN !== out.length && ok) {
      // GCM is a stream mode: every Update hands back exactly what it was given.
      throw new RangeError(`The output holds ${out.length} bytes; the parts and tag need ${off + TAGLEN}.`);
    }
    // Final writes no bytes in GCM; the tag goes after the ciphertext.
    const tag = out.subarray(off) as Uint8Array<ArrayBuffer>;
    ok = ok && lib.EVP_EncryptFinal_ex(ctx, tag, this.#outlBytes) === 1;
    ok = ok && lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAGLEN, tag) === 1;
    if (!ok) throw new Error("libcrypto failed to seal a frame.");
  }

  /**
   * Decrypts ciphertext||tag in place under nonce `n`; returns the plaintext (a view of `ct`), or
   * null when the tag does not verify (the bytes of `ct` are then garbage and must be dropped).
   */
  openInPlace(n: number, ct: Uint8Array): Uint8Array | null {
    this.#live();
    if (ct.length < TAGLEN) return null;
    const lib = this.#lib;
    const ctx = this.#dec;
    const len = ct.length - TAGLEN;
    const body = ct.subarray(0, len) as Uint8Array<ArrayBuffer>;
    if (lib.DecryptInitNonce(ctx, null, null, null, this.#nonce(n)) !== 1) return null;
    if (len > 0 && lib.EVP_DecryptUpdate(ctx, body, this.#outlBytes, body, len) !== 1) return null;
    const tag = ct.subarray(len) as Uint8Array<ArrayBuffer>;
    if (lib.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAGLEN, tag) !== 1) return null;
    // The tag is checked here; nothing decrypted leaves this function before it passes.
    if (lib.EVP_DecryptFinal_ex(ctx, tag, this.#outlBytes) !== 1) return null;
    return body;
  }

  /** Frees the OpenSSL contexts (which wipes the key schedule); later calls throw. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    freeCtx.unregister(this);
    this.#lib.EVP_CIPHER_CTX_free(this.#enc);
    this.#lib.EVP_CIPHER_CTX_free(this.#dec);
  }
}
