import assert from "node:assert/strict";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { LinkError } from "../../src/protocol/noise.ts";
import { type FrameCipherKind, nativeFrameCipherAvailable } from "../../src/net/frame_cipher.ts";
import { memoryPipe } from "../helpers/mem_pipe.ts";
import {
  type ByteStream,
  encodeFrame,
  FrameReader,
  MAX_FRAME_LEN,
  MAX_FRAME_PLAINTEXT,
  SecureChannel,
} from "../../src/net/secure_channel.ts";

// Every channel test runs once per frame cipher: `deno test -A` loads libcrypto, so the default
// choice alone would never test the portable path of a run without --allow-ffi or OpenSSL.
const KINDS: readonly FrameCipherKind[] = ["native", "portable"];

/** Registers `fn` once per frame cipher, both ends of each link using that one. */
function channelTest(name: string, fn: (kind: FrameCipherKind) => Promise<void>): void {
  for (const kind of KINDS) {
    Deno.test({
      name: `${name} (${kind} cipher)`,
      ignore: kind === "native" && !nativeFrameCipherAvailable(),
      fn: () => fn(kind),
    });
  }
}

/** Two ends of a link over an in-memory pipe; `kind` seals a's frames (and opens b's), `bKind` b's. */
function channelPair(kind: FrameCipherKind, capacity?: number, bKind: FrameCipherKind = kind) {
  const [x, y] = memoryPipe(capacity);
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  const a = new SecureChannel(x, { sendKey: k1, receiveKey: k2, cipher: kind, peer: "b" });
  const b = new SecureChannel(y, { sendKey: k2, receiveKey: k1, cipher: bKind, peer: "a" });
  assert.equal(a.cipher, kind);
  assert.equal(b.cipher, bKind);
  return { a, b, x, y };
}

/** One end of a link with all-zero keys, for tests that write raw bytes at it. */
function lonelyChannel(kind: FrameCipherKind, conn: ByteStream): SecureChannel {
  return new SecureChannel(conn, {
    sendKey: new Uint8Array(32),
    receiveKey: new Uint8Array(32),
    cipher: kind,
  });
}

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

async function receiveAll(ch: SecureChannel, bytes: number): Promise<Uint8Array> {
  const out = new Uint8Array(bytes);
  let off = 0;
  while (off < bytes) {
    const chunk = await ch.receive();
    assert.ok(chunk !== null, "stream ended early");
    out.set(chunk, off);
    off += chunk.length;
  }
  return out;
}

const isLinkError = (code: string) => (err: unknown) => err instanceof LinkError && err.code === code;

// ─── Tests ───────────────────────────────────────────────────────────────────────────────────

channelTest("a 2.5 MiB send arrives intact as 1 MiB frames, in both directions", async (kind) => {
  const { a, b } = channelPair(kind);
  const ab = random(2.5 * MAX_FRAME_PLAINTEXT);
  const ba = random(100_000);
  const [, , gotB, gotA] = await Promise.all([
    a.send(ab),
    b.send(ba),
    (async () => {
      const sizes: number[] = [];
      const out = new Uint8Array(ab.length);
      let off = 0;
      while (off < ab.length) {
        const c = (await b.receive())!;
        sizes.push(c.length);
        out.set(c, off);
        off += c.length;
      }
      assert.deepEqual(sizes, [MAX_FRAME_PLAINTEXT, MAX_FRAME_PLAINTEXT, MAX_FRAME_PLAINTEXT / 2]);
      return out;
    })(),
    receiveAll(a, ba.length),
  ]);
  assert.deepEqual(gotB, ab);
  assert.deepEqual(gotA, ba);
  await Promise.all([a.close(), b.close()]);
});

channelTest("an empty send arrives as an empty chunk, not as the end", async (kind) => {
  const { a, b } = channelPair(kind);
  await a.send(new Uint8Array(0));
  assert.deepEqual(await b.receive(), new Uint8Array(0));
  await a.send(new Uint8Array([1]));
  assert.deepEqual(await b.receive(), new Uint8Array([1]));
  await Promise.all([a.close(), b.close()]);
});

channelTest("a clean close reaches the other side as null, and stays null", async (kind) => {
  const { a, b } = channelPair(kind);
  await a.send(new Uint8Array([1, 2, 3]));
  const closing = a.close();
  assert.deepEqual(await b.receive(), new Uint8Array([1, 2, 3]));
  assert.equal(await b.receive(), null);
  assert.equal(await b.receive(), null);
  await closing; // resolves once b answered with its own close frame
  await assert.rejects(b.send(new Uint8Array([4])), isLinkError("closed"));
  await assert.rejects(a.send(new Uint8Array([4])), isLinkError("closed"));
  assert.equal(await a.receive(), null);
  await b.close();
});

channelTest(
  "close() waits for a send already under way, so its bytes arrive before the close",
  async (kind) => {
    const { a, b } = channelPair(kind, 64 * 1024);
    const data = random(3 * MAX_FRAME_PLAINTEXT);
    const sending = a.send(data);
    const closing = a.close();
    assert.deepEqual(await receiveAll(b, data.length), data);
    assert.equal(await b.receive(), null);
    await Promise.all([sending, closing, b.close()]);
  },
);

channelTest(
  "a stream that ends without a close frame is an error (truncated), not a clean end",
  async (kind) => {
    const { a, b } = channelPair(kind);
    await a.send(new Uint8Array([9]));
    a.abort();
    assert.deepEqual(await b.receive(), new Uint8Array([9]));
    await assert.rejects(b.receive(), isLinkError("truncated"));
    await assert.rejects(b.receive(), isLinkError("truncated"));
    await b.close();
  },
);

channelTest("a stream cut inside a frame is truncated", async (kind) => {
  const [x, y] = memoryPipe();
  const ch = lonelyChannel(kind, y);
  await x.write(encodeFrame(new Uint8Array(100)).subarray(0, 50));
  x.close();
  await assert.rejects(ch.receive(), isLinkError("truncated"));
  await ch.close();
});

channelTest("a connection reset reads as truncated", async (kind) => {
  const [x, y] = memoryPipe();
  const ch = lonelyChannel(kind, y);
  x.outgoing.broken = true;
  x.outgoing.notify();
  await assert.rejects(ch.receive(), isLinkError("truncated"));
  x.close();
  await ch.close();
});

// Small frames and large ones take different calls in the portable cipher (node:crypto, WebCrypto).
for (const [name, size] of [["small", 100], ["large", 200_000]] as const) {
  channelTest(
    `a flipped bit in a ${name} frame is refused as tampered and closes the socket`,
    async (kind) => {
      const { a, b, x, y } = channelPair(kind);
      let seen = 0;
      x.tamper = (chunk) => {
        // flip one bit in the ciphertext of the first frame, past its 4-byte header
        if (seen <= 10 && seen + chunk.length > 10) chunk[10 - seen] ^= 0x04;
        seen += chunk.length;
        return [chunk];
      };
      await a.send(random(size));
      await assert.rejects(b.receive(), isLinkError("tampered"));
      assert.ok(y.closed, "the receiving socket is closed");
      await assert.rejects(b.receive(), isLinkError("tampered"));
      await Promise.all([a.close(), b.close()]);
    },
  );
}

channelTest("a replayed frame fails authentication (implicit nonces)", async (kind) => {
  const { a, b, x } = channelPair(kind);
  x.tamper = (chunk) => [chunk, chunk.slice()];
  await a.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual(await b.receive(), new Uint8Array([1, 2, 3]));
  await assert.rejects(b.receive(), isLinkError("tampered"));
  await Promise.all([a.close(), b.close()]);
});

channelTest("frames swapped in transit fail authentication", async (kind) => {
  const { a, b, x } = channelPair(kind);
  let held: Uint8Array | null = null;
  x.tamper = (chunk) => {
    if (held === null) {
      held = chunk;
      return [];
    }
    const first = held;
    x.tamper = null;
    return [chunk, first];
  };
  await a.send(new Uint8Array([1]));
  await a.send(new Uint8Array([2]));
  await assert.rejects(b.receive(), isLinkError("tampered"));
  await Promise.all([a.close(), b.close()]);
});

channelTest(
  "an oversize length prefix is refused at once, without waiting for (or allocating) its body",
  async (kind) => {
    const [x, y] = memoryPipe();
    const ch = lonelyChannel(kind, y);
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_FRAME_LEN + 1);
    await x.write(header);
    await assert.rejects(ch.receive(), isLinkError("too_large"));
    x.close();
    await ch.close();
  },
);

channelTest("a receive timeout throws timeout, and the frame that comes later is not lost", async (kind) => {
  const { a, b } = channelPair(kind);
  await assert.rejects(b.receive({ timeoutMs: 20 }), isLinkError("timeout"));
  await a.send(new Uint8Array([7, 7]));
  assert.deepEqual(await b.receive({ timeoutMs: 1000 }), new Uint8Array([7, 7]));
  await Promise.all([a.close(), b.close()]);
});

channelTest("a receive can be cancelled with an AbortSignal", async (kind) => {
  const { a, b } = channelPair(kind);
  const ctl = new AbortController();
  const waiting = b.receive({ signal: ctl.signal });
  ctl.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  await Promise.all([a.close(), b.close()]);
});

channelTest("two receives at once are a programming error", async (kind) => {
  const { a, b } = channelPair(kind);
  const first = b.receive();
  await assert.rejects(b.receive(), /one at a time/);
  await a.send(new Uint8Array([1]));
  assert.deepEqual(await first, new Uint8Array([1]));
  await Promise.all([a.close(), b.close()]);
});

channelTest("send resolves only once the socket took the bytes (back-pressure)", async (kind) => {
  const { a, b } = channelPair(kind, 64 * 1024);
  const data = random(2 * MAX_FRAME_PLAINTEXT);
  let done = false;
  const sending = a.send(data).then(() => done = true);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, "send resolved while the pipe was full");
  assert.deepEqual(await receiveAll(b, data.length), data);
  await sending;
  assert.equal(done, true);
  await Promise.all([a.close(), b.close()]);
});

channelTest("concurrent sends are delivered whole, one after the other", async (kind) => {
  const { a, b } = channelPair(kind, 64 * 1024);
  const one = new Uint8Array(1.5 * MAX_FRAME_PLAINTEXT).fill(1);
  const two = new Uint8Array(1.5 * MAX_FRAME_PLAINTEXT).fill(2);
  const sending = Promise.all([a.send(one), a.send(two)]);
  const got = await receiveAll(b, one.length + two.length);
  await sending;
  assert.ok(got.subarray(0, one.length).every((v) => v === 1));
  assert.ok(got.subarray(one.length).every((v) => v === 2));
  await Promise.all([a.close(), b.close()]);
});

channelTest("close() does not wait for an idle other side to answer", async (kind) => {
  const { a, b } = channelPair(kind);
  const t0 = performance.now();
  await a.close(); // b never reads, so never answers; but it sends nothing either
  const waited = performance.now() - t0;
  assert.ok(waited < 500, `waited ${waited} ms`);
  assert.equal(await b.receive(), null);
  await b.close();
});

channelTest(
  "close() keeps draining while the other side is still sending, up to the linger",
  async (kind) => {
    const { a, b } = channelPair(kind, 64 * 1024);
    let stop = false;
    const flooding = (async () => {
      while (!stop) {
        await b.send(new Uint8Array(1000)).catch(() => stop = true);
        await new Promise((r) => setTimeout(r, 1)); // the in-memory pipe never yields to timers by itself
      }
    })();
    const t0 = performance.now();
    await a.close();
    const waited = performance.now() - t0;
    stop = true;
    await flooding;
    assert.ok(waited >= 900 && waited < 3000, `waited ${waited} ms`);
    await b.close();
  },
);

channelTest(
  "random chunk sequences, split at random points in transit, round-trip in order",
  async (kind) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.uint8Array({ maxLength: 20_000, size: "max" }), { maxLength: 8 }),
        fc.integer({ min: 1, max: 7000 }),
        async (messages, capacity) => {
          const { a, b, x } = channelPair(kind, capacity);
          // re-chunk everything into pieces of 1..13 bytes so frame boundaries fall anywhere
          x.tamper = (chunk) => {
            const parts: Uint8Array[] = [];
            for (let off = 0, step = 1; off < chunk.length; off += step, step = (step % 13) + 1) {
              parts.push(chunk.subarray(off, off + step));
            }
            return parts;
          };
          const receiving = (async () => {
            const got: Uint8Array[] = [];
            for (;;) {
              const m = await b.receive();
              if (m === null) return got;
              got.push(m);
            }
          })();
          for (const m of messages) await a.send(m);
          await a.close();
          assert.deepEqual(await receiving, messages);
          await b.close();
        },
      ),
      { numRuns: 25 },
    );
  },
);

channelTest("the bytes on the wire are the same as before the frame ciphers were split out", async (kind) => {
  // Recorded from the channel as it was (CipherState for the portable path, aead.ts for libcrypto,
  // both giving these bytes): frames of 3 bytes, a sendv, 9000 bytes, 1.5 MB in two frames, a close.
  const [x, y] = memoryPipe();
  const k1 = new Uint8Array(32).fill(0x11);
  const k2 = new Uint8Array(32).fill(0x22);
  const a = new SecureChannel(x, { sendKey: k1, receiveKey: k2, cipher: kind });
  const b = new SecureChannel(y, { sendKey: k2, receiveKey: k1, cipher: kind });
  const wire: Uint8Array[] = [];
  x.tamper = (chunk) => {
    wire.push(chunk.slice());
    return [chunk];
  };
  const big = new Uint8Array(1_500_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff;
  const draining = (async () => {
    while (await b.receive() !== null) { /* drain */ }
  })();
  await a.send(Uint8Array.of(1, 2, 3));
  await a.sendv([Uint8Array.of(4), new Uint8Array(0), Uint8Array.of(5, 6)]);
  await a.send(big.subarray(0, 9000));
  await a.send(big);
  await a.close();
  await draining;
  await b.close();
  const all = new Uint8Array(wire.reduce((sum, chunk) => sum + chunk.length, 0));
  let at = 0;
  for (const chunk of wire) {
    all.set(chunk, at);
    at += chunk.length;
  }
  assert.equal(
    all.subarray(0, 48).toHex(),
    "00000014c4cb1c64b741e04eddb51f762defd4d1ec56cd3d00000014c98f0dce7ee63d42e48f7afc5fd9783620fea2ce",
  );
  assert.equal(all.length, 1_509_132);
  assert.equal(
    createHash("sha256").update(all).digest("hex"),
    "c1fd1fbe8e261c08a83ac4918f653154c7b1717649f170ee4f264769986bf8f6",
  );
});

Deno.test({
  name:
    "a link whose ends use different frame ciphers (native, portable) carries small and large frames both ways",
  ignore: !nativeFrameCipherAvailable(),
  async fn() {
    const { a, b } = channelPair("native", undefined, "portable");
    const ab = random(2.5 * MAX_FRAME_PLAINTEXT);
    const ba = random(100_000);
    await a.send(new Uint8Array([1, 2, 3]));
    await b.send(new Uint8Array([4]));
    assert.deepEqual(await b.receive(), new Uint8Array([1, 2, 3]));
    assert.deepEqual(await a.receive(), new Uint8Array([4]));
    const [, , gotB, gotA] = await Promise.all([
      a.send(ab),
      b.send(ba),
      receiveAll(b, ab.length),
      receiveAll(a, ba.length),
    ]);
    assert.deepEqual(gotB, ab);
    assert.deepEqual(gotA, ba);
    const closing = a.close();
    assert.equal(await b.receive(), null);
    await Promise.all([closing, b.close()]);
  },
});

Deno.test("FrameReader returns null only at a clean boundary", async () => {
  const [x, y] = memoryPipe();
  const reader = new FrameReader(y);
  await x.write(encodeFrame(new Uint8Array([1, 2])));
  await x.write(encodeFrame(new Uint8Array(0)));
  x.close();
  assert.deepEqual(await reader.readFrame(10), new Uint8Array([1, 2]));
  assert.deepEqual(await reader.readFrame(10), new Uint8Array(0));
  assert.equal(await reader.readFrame(10), null);
  y.close();
});

Deno.test("FrameReader reads small frames into buffers it got back, once its reader hands them back, and never into one still held", async () => {
  const [x, y] = memoryPipe();
  const reader = new FrameReader(y);
  for (let i = 1; i <= 4; i++) await x.write(encodeFrame(new Uint8Array(100).fill(i)));
  const first = (await reader.readFrame(MAX_FRAME_LEN))!;
  assert.equal(first.buffer.byteLength, 100, "a reader that never hands buffers back gets exact ones");
  reader.recycle(first.buffer as ArrayBuffer); // wrong size for the pool: only switches recycling on
  const second = (await reader.readFrame(MAX_FRAME_LEN))!;
  assert.ok(second.buffer.byteLength > 100, "from now on small frames go into poolable buffers");
  assert.ok(second.every((v) => v === 2));
  const third = (await reader.readFrame(MAX_FRAME_LEN))!;
  assert.notEqual(third.buffer, second.buffer, "the second frame's buffer is still held");
  assert.ok(second.every((v) => v === 2), "and it was not written into");
  reader.recycle(second.buffer as ArrayBuffer);
  const fourth = (await reader.readFrame(MAX_FRAME_LEN))!;
  assert.equal(fourth.buffer, second.buffer, "the buffer handed back is read into again");
  assert.ok(fourth.every((v) => v === 4));
  x.close();
  y.close();
});

channelTest(
  "small sends written at once and sends queued behind a large one arrive in order",
  async (kind) => {
    const { a, b } = channelPair(kind, 64 * 1024);
    const big = random(MAX_FRAME_PLAINTEXT + 10);
    const sends = [
      a.sendv([Uint8Array.of(1)]),
      a.send(big),
      a.sendv([Uint8Array.of(2), Uint8Array.of(3)]),
    ];
    assert.deepEqual(await b.receive(), Uint8Array.of(1));
    assert.deepEqual(await receiveAll(b, big.length), big);
    assert.deepEqual(await b.receive(), Uint8Array.of(2, 3));
    await Promise.all(sends);
    // idle again: the next one goes straight out
    await a.sendv([Uint8Array.of(4)]);
    assert.deepEqual(await b.receive(), Uint8Array.of(4));
    await Promise.all([a.close(), b.close()]);
  },
);

channelTest("a send after the socket broke rejects as closed, and so does every later one", async (kind) => {
  const [x] = memoryPipe();
  const a = lonelyChannel(kind, x);
  x.write = () => Promise.reject(new Error("connection reset by peer"));
  await assert.rejects(
    a.sendv([Uint8Array.of(1)]),
    (err) => isLinkError("closed")(err) && /connection broke/.test(String(err)),
  );
  await assert.rejects(a.sendv([Uint8Array.of(2)]), isLinkError("closed"));
  await assert.rejects(a.send(Uint8Array.of(3)), isLinkError("closed"));
  a.abort();
});
