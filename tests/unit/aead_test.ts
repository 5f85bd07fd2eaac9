import assert from "node:assert/strict";
import { splitAt } from "../helpers/split_at.ts";
import fc from "fast-check";
import { nativeAeadAvailable, NativeGcm } from "../../src/net/aead.ts";
import { CipherState, TAGLEN } from "../../src/protocol/noise.ts";

// The libcrypto binding against node:crypto (CipherState); runs where libcrypto loads and FFI is allowed.
// The frame ciphers built on each are tested side by side in frame_cipher_test.ts.
const ignore = !nativeAeadAvailable();
const EMPTY = new Uint8Array(0);

/** A CipherState whose next nonce is `n` (§5.1 SetNonce). */
function stateAt(key: Uint8Array, n: number): CipherState {
  const cs = new CipherState(key);
  cs.setNonce(n);
  return cs;
}

Deno.test({
  name: "libcrypto seals the same bytes as CipherState, from any split of the plaintext",
  ignore,
  fn() {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 5000 }),
        fc.array(fc.nat(5000), { maxLength: 4 }),
        fc.nat(40),
        (key, plain, cuts, n) => {
          const gcm = NativeGcm.create(key)!;
          const parts = splitAt(plain, cuts);
          const out = new Uint8Array(plain.length + TAGLEN);
          gcm.seal(n, parts, out);
          assert.deepEqual(out, stateAt(key, n).encryptWithAd(EMPTY, plain));
          const back = gcm.openInPlace(n, out.slice());
          assert.deepEqual(back, plain);
          gcm.free();
        },
      ),
      { numRuns: 150 },
    );
  },
});

Deno.test({
  name: "libcrypto opens what CipherState sealed, in place, at a 1 MiB frame",
  ignore,
  fn() {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const plain = new Uint8Array(1024 * 1024);
    crypto.getRandomValues(plain.subarray(0, 65536));
    const ct = stateAt(key, 7).encryptWithAd(EMPTY, plain);
    const gcm = NativeGcm.create(key)!;
    const opened = gcm.openInPlace(7, ct)!;
    assert.equal(opened.buffer, ct.buffer, "opened in place");
    assert.deepEqual(opened, plain);
    gcm.free();
  },
});

Deno.test({
  name: "libcrypto refuses a flipped bit, a wrong nonce and a short message",
  ignore,
  fn() {
    const key = crypto.getRandomValues(new Uint8Array(32));
    const gcm = NativeGcm.create(key)!;
    const plain = new TextEncoder().encode("hello over the link");
    const sealed = new Uint8Array(plain.length + TAGLEN);
    gcm.seal(3, [plain], sealed);
    for (const i of [0, 5, plain.length, sealed.length - 1]) {
      const bad = sealed.slice();
      bad[i] ^= 1;
      assert.equal(gcm.openInPlace(3, bad), null, `bit flipped at ${i}`);
    }
    assert.equal(gcm.openInPlace(4, sealed.slice()), null);
    assert.equal(gcm.openInPlace(3, sealed.slice(0, TAGLEN - 1)), null);
    assert.deepEqual(gcm.openInPlace(3, sealed.slice()), plain);
    gcm.free();
    assert.throws(() => gcm.openInPlace(3, sealed.slice()), /freed/);
  },
});
