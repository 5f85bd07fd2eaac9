import assert from "node:assert/strict";
import { splitAt } from "../helpers/split_at.ts";
import { concat } from "../../src/protocol/bytes.ts";
import fc from "fast-check";
import {
  ASYNC_AEAD_THRESHOLD,
  createFrameCipher,
  type FrameCipher,
  type FrameCipherKind,
  nativeFrameCipherAvailable,
  UpgradingFrameCipher,
} from "../../src/net/frame_cipher.ts";
import {
  CipherState,
  HandshakeState,
  keyPairFromPrivateKey,
  LinkError,
  TAGLEN,
} from "../../src/protocol/noise.ts";

// Both backends run here explicitly: `deno test -A` loads libcrypto, so the default choice alone
// would never test the portable path that runs without --allow-ffi or without OpenSSL.
const KINDS: readonly FrameCipherKind[] = ["native", "portable"];
const unavailable = (kind: FrameCipherKind) => kind === "native" && !nativeFrameCipherAvailable();
const EMPTY = new Uint8Array(0);
const HEADROOM = 4;
const MAX_PLAINTEXT = 1 + 1024 * 1024;
/** Around the portable backend's switch from node:crypto to WebCrypto, and a full frame. */
const SIZES = [0, 1, ASYNC_AEAD_THRESHOLD - 1, ASYNC_AEAD_THRESHOLD, 100_000, MAX_PLAINTEXT];

function cipher(kind: FrameCipherKind, sendKey: Uint8Array, receiveKey: Uint8Array, headroom = HEADROOM) {
  return createFrameCipher({ sendKey, receiveKey, headroom, maxPlaintext: MAX_PLAINTEXT }, kind);
}

/** Seals and returns ciphertext||tag alone, the headroom checked and dropped. */
async function sealBytes(
  c: FrameCipher,
  parts: readonly Uint8Array[],
  headroom = HEADROOM,
): Promise<Uint8Array> {
  const pieces = await c.seal(parts);
  const out = concat(...pieces);
  c.release(pieces);
  assert.ok(pieces[0].length >= headroom, "the first piece holds the headroom");
  return out.slice(headroom);
}

function patterned(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

const isLinkError = (code: string) => (err: unknown) => err instanceof LinkError && err.code === code;

/** The cacophony vector for Noise_IKpsk2_25519_AESGCM_SHA256 (as in noise_test.ts): its transport messages. */
function vectorKeys() {
  const hex = (s: string) => Uint8Array.fromHex(s);
  const psk = hex("54686973206973206d7920417573747269616e20706572737065637469766521");
  const prologue = hex("4a6f686e2047616c74");
  const init = HandshakeState.initiator({
    s: keyPairFromPrivateKey(hex("e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1")),
    rs: hex("31e0303fd6418d2f8c0e78b91f22e8caed0fbe48656dcf4767e4834f701b8f62"),
    psk,
    prologue,
    e: keyPairFromPrivateKey(hex("893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a")),
  });
  const resp = HandshakeState.responder({
    s: keyPairFromPrivateKey(hex("4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893")),
    psk,
    prologue,
    e: keyPairFromPrivateKey(hex("bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b")),
  });
  resp.readMessage(init.writeMessage(hex("4c756477696720766f6e204d69736573")));
  init.readMessage(resp.writeMessage(hex("4d757272617920526f746862617264")));
  return { a: init.splitKeys(), b: resp.splitKeys() };
}

const TRANSPORT = [
  ["462e20412e20486179656b", "38cbf3835c78b7802df0dd0d9640ff8575debd0cb61cfb52590da1"],
  ["4361726c204d656e676572", "ffc365ff6955fc66c5d809b31ac995f812c5770bd29f0df12f0ffd"],
  [
    "4a65616e2d426170746973746520536179",
    "a7f2828174c4ead2491ffeb77c41c890fd1229ee36f23ccb9066a795daff1cad6b",
  ],
  [
    "457567656e2042f6686d20766f6e2042617765726b",
    "3b86963d5c0e6e3b4153d77153836606393eefc4e5e6dae97796552d1265839ee3825cb80c",
  ],
];

for (const kind of KINDS) {
  Deno.test({
    name: `the ${kind} frame cipher seals the Noise vector's transport messages byte for byte (§12.3 nonce)`,
    ignore: unavailable(kind),
    async fn() {
      const { a, b } = vectorKeys();
      const initiator = cipher(kind, a.sendKey, a.receiveKey, 0);
      const responder = cipher(kind, b.sendKey, b.receiveKey, 0);
      for (const [i, [payload, ciphertext]] of TRANSPORT.entries()) {
        const [tx, rx] = i % 2 === 0 ? [initiator, responder] : [responder, initiator];
        const sealed = await sealBytes(tx, [Uint8Array.fromHex(payload)], 0);
        assert.equal(sealed.toHex(), ciphertext, `transport message ${i + 2}`);
        assert.equal((await rx.open(sealed)).toHex(), payload);
      }
    },
  });

  Deno.test({
    name: `the ${kind} frame cipher seals what CipherState seals, nonce for nonce, from any split into parts`,
    ignore: unavailable(kind),
    async fn() {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 32, maxLength: 32 }),
          fc.array(
            fc.tuple(
              fc.uint8Array({ maxLength: 12_000, size: "max" }),
              fc.array(fc.nat(12_000), { maxLength: 3 }),
            ),
            { minLength: 1, maxLength: 4 },
          ),
          async (key, frames) => {
            const c = cipher(kind, key, key);
            const reference = new CipherState(key);
            for (const [plain, cuts] of frames) {
              const parts = splitAt(plain, cuts);
              const expected = reference.encryptWithAd(EMPTY, plain);
              const sealed = await sealBytes(c, parts);
              assert.equal(sealed.toHex(), expected.toHex());
              assert.deepEqual(await c.open(sealed), plain);
            }
          },
        ),
        { numRuns: 40 },
      );
      const key = crypto.getRandomValues(new Uint8Array(32));
      const c = cipher(kind, key, key);
      const reference = new CipherState(key);
      for (const size of SIZES) {
        const plain = patterned(size);
        const sealed = await sealBytes(c, [plain]);
        assert.equal(sealed.toHex(), reference.encryptWithAd(EMPTY, plain).toHex(), `${size} bytes`);
        assert.deepEqual(await c.open(sealed), plain);
      }
    },
  });

  Deno.test({
    name:
      `the ${kind} frame cipher refuses a flipped bit as tampered and keeps its nonce for the genuine frame`,
    ignore: unavailable(kind),
    async fn() {
      const key = crypto.getRandomValues(new Uint8Array(32));
      const tx = cipher(kind, key, key);
      const rx = cipher(kind, key, key);
      for (const size of [10, 200_000]) {
        const sealed = await sealBytes(tx, [patterned(size)]);
        for (const i of [0, sealed.length - 1]) {
          const bad = sealed.slice();
          bad[i] ^= 1;
          await assert.rejects(async () => await rx.open(bad), isLinkError("tampered"));
        }
        await assert.rejects(async () => await rx.open(sealed.slice(0, TAGLEN - 1)), isLinkError("tampered"));
        assert.deepEqual(await rx.open(sealed), patterned(size));
      }
    },
  });
}

Deno.test({
  name: "native-sealed frames open with the portable cipher and portable-sealed with the native one",
  ignore: !nativeFrameCipherAvailable(),
  async fn() {
    const k1 = crypto.getRandomValues(new Uint8Array(32));
    const k2 = crypto.getRandomValues(new Uint8Array(32));
    const native = cipher("native", k1, k2);
    const portable = cipher("portable", k2, k1);
    for (const size of SIZES) {
      const plain = patterned(size);
      const n2p = await sealBytes(native, [plain.subarray(0, 1), plain.subarray(1)]);
      assert.deepEqual(await portable.open(n2p), plain, `native → portable, ${size} bytes`);
      const p2n = await sealBytes(portable, [plain.subarray(0, 1), plain.subarray(1)]);
      assert.deepEqual(await native.open(p2n), plain, `portable → native, ${size} bytes`);
    }
  },
});

Deno.test("by default a link gets the native cipher once libcrypto has loaded, the portable one where it cannot", () => {
  const key = new Uint8Array(32);
  const loaded = nativeFrameCipherAvailable(); // loads it (-A grants FFI), as the scheduled load would
  const chosen = createFrameCipher({ sendKey: key, receiveKey: key, headroom: 4, maxPlaintext: 1024 });
  assert.equal(chosen.kind, loaded ? "native" : "portable");
});

Deno.test({
  name:
    "a link made before libcrypto loaded seals and opens portably, then natively from the first frame after the load, nonces going on",
  ignore: !nativeFrameCipherAvailable(),
  async fn() {
    const k1 = crypto.getRandomValues(new Uint8Array(32));
    const k2 = crypto.getRandomValues(new Uint8Array(32));
    let loaded = false;
    const up = new UpgradingFrameCipher(
      { sendKey: k1, receiveKey: k2, headroom: HEADROOM, maxPlaintext: MAX_PLAINTEXT },
      () => loaded,
    );
    const peer = cipher("portable", k2, k1); // the other end: one backend throughout
    // Large frames too: the portable backend seals those asynchronously (WebCrypto).
    const sizes = [1, ASYNC_AEAD_THRESHOLD, 100_000, 0, 5];
    const sendPending: Promise<Uint8Array>[] = [];
    for (const [i, size] of sizes.entries()) {
      if (i === 2) {
        assert.equal(up.kind, "portable");
        // The switch lands while the frame before it may still be sealing.
        sendPending.push(sealBytes(up, [patterned(size)]));
        loaded = true;
        continue;
      }
      sendPending.push(sealBytes(up, [patterned(size)]));
    }
    assert.equal(up.kind, "native");
    for (const [i, sealed] of (await Promise.all(sendPending)).entries()) {
      assert.deepEqual(await peer.open(sealed), patterned(sizes[i]), `frame ${i} opens in order`);
    }
    // And the receiving direction: frames sealed before the switch open after it, in order.
    loaded = false;
    const down = new UpgradingFrameCipher(
      { sendKey: k1, receiveKey: k2, headroom: HEADROOM, maxPlaintext: MAX_PLAINTEXT },
      () => loaded,
    );
    const frames: Uint8Array[] = [];
    for (const size of sizes) frames.push(await sealBytes(peer, [patterned(size)]));
    assert.deepEqual(await down.open(frames[0]), patterned(sizes[0]));
    assert.deepEqual(await down.open(frames[1]), patterned(sizes[1]));
    loaded = true;
    for (let i = 2; i < frames.length; i++) {
      const opened = await down.open(frames[i]);
      assert.deepEqual(opened, patterned(sizes[i]));
      // The native backend opens in place; the portable one returns a fresh buffer.
      assert.equal(opened.buffer, frames[i].buffer, `frame ${i} was opened natively`);
    }
    // A replayed frame still fails after the switch: the nonce moved on.
    await assert.rejects(async () => await down.open(frames[0]), isLinkError("tampered"));

    // Both directions on one cipher, the load landing while a large frame is still opening
    // (WebCrypto): a seal then switches sealing only; opening switches at the next open.
    loaded = false;
    const both = new UpgradingFrameCipher(
      { sendKey: k1, receiveKey: k2, headroom: HEADROOM, maxPlaintext: MAX_PLAINTEXT },
      () => loaded,
    );
    const other = cipher("portable", k2, k1);
    const incoming = [100_000, 3, 100_000].map((n) => patterned(n));
    const sealedIn: Uint8Array[] = [];
    for (const p of incoming) sealedIn.push(await sealBytes(other, [p]));
    const opening = both.open(sealedIn[0]);
    assert.ok(opening instanceof Promise, "a large portable open is in flight");
    loaded = true;
    const out = await sealBytes(both, [patterned(7)]);
    assert.deepEqual(await opening, incoming[0]);
    assert.deepEqual(await both.open(sealedIn[1]), incoming[1]);
    const last = await both.open(sealedIn[2]);
    assert.deepEqual(last, incoming[2]);
    assert.equal(last.buffer, sealedIn[2].buffer, "opened natively, in place");
    assert.deepEqual(await other.open(out), patterned(7));
    assert.equal(both.kind, "native");
  },
});

Deno.test({
  name:
    "a bulk frame before libcrypto loaded loads it there and then: small frames wait for the scheduled load",
  ignore: !nativeFrameCipherAvailable(),
  async fn() {
    const k1 = crypto.getRandomValues(new Uint8Array(32));
    const k2 = crypto.getRandomValues(new Uint8Array(32));
    let loads = 0;
    const up = new UpgradingFrameCipher(
      { sendKey: k1, receiveKey: k2, headroom: HEADROOM, maxPlaintext: MAX_PLAINTEXT },
      () => false, // the scheduled load has not come
      () => (++loads, true),
    );
    const peer = cipher("portable", k2, k1);
    const small = await sealBytes(up, [patterned(ASYNC_AEAD_THRESHOLD - 2)]);
    assert.equal(loads, 0, "a small frame does not load libcrypto");
    assert.equal(up.kind, "portable");
    const bulk = await sealBytes(up, [patterned(1), patterned(ASYNC_AEAD_THRESHOLD)]);
    assert.equal(loads, 1, "a bulk frame does");
    assert.equal(up.kind, "native");
    assert.deepEqual(await peer.open(small), patterned(ASYNC_AEAD_THRESHOLD - 2));
    assert.deepEqual(await peer.open(bulk), concat(patterned(1), patterned(ASYNC_AEAD_THRESHOLD)));
  },
});

Deno.test("without --allow-ffi, or with MAILMEET_NATIVE_CRYPTO=0, a link falls back to the portable cipher", async () => {
  const fixture = new URL("../fixtures/frame_cipher_choice.ts", import.meta.url).pathname;
  const run = async (permissions: string[], env: Record<string, string> = {}) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--no-prompt", ...permissions, fixture],
      env,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    return new TextDecoder().decode(out.stdout).trim();
  };
  assert.equal(await run([]), "portable portable");
  assert.equal(
    await run(["--allow-ffi", "--allow-env"], { MAILMEET_NATIVE_CRYPTO: "0" }),
    "portable portable",
  );
  // With FFI: portable until libcrypto has loaded (off the handshake's path), native after.
  if (nativeFrameCipherAvailable()) {
    assert.equal(await run(["--allow-ffi", "--allow-env"]), "portable native");
  }
});

Deno.test({
  name:
    "the native cipher seals a small frame into the buffer of one whose write completed, never into one still in flight",
  ignore: unavailable("native"),
  fn() {
    const key = new Uint8Array(32).fill(9);
    const c = cipher("native", key, key);
    const one = c.seal([Uint8Array.of(1, 2, 3)]) as Uint8Array[];
    const firstBytes = one[0].slice();
    const two = c.seal([Uint8Array.of(4, 5, 6)]) as Uint8Array[];
    assert.notEqual(two[0].buffer, one[0].buffer, "the first frame is not released yet");
    assert.deepEqual(one[0], firstBytes, "and sealing the second did not touch it");
    c.release(one);
    const three = c.seal([Uint8Array.of(7, 8, 9)]) as Uint8Array[];
    assert.equal(three[0].buffer, one[0].buffer, "the released buffer is sealed into again");
    assert.equal(three[0].length, HEADROOM + 3 + TAGLEN);
  },
});
