import assert from "node:assert/strict";
import fc from "fast-check";
import { CipherState, LinkError } from "../../src/protocol/noise.ts";
import { memoryPipe } from "../helpers/mem_stream.ts";
import {
  encodeFrame,
  FrameReader,
  MAX_FRAME_LEN,
  MAX_FRAME_PLAINTEXT,
  SecureChannel,
} from "../../src/net/secure_channel.ts";

function channelPair(capacity?: number) {
  const [x, y] = memoryPipe(capacity);
  const k1 = crypto.getRandomValues(new Uint8Array(32));
  const k2 = crypto.getRandomValues(new Uint8Array(32));
  const a = new SecureChannel(x, { send: new CipherState(k1), receive: new CipherState(k2), peer: "b" });
  const b = new SecureChannel(y, { send: new CipherState(k2), receive: new CipherState(k1), peer: "a" });
  return { a, b, x, y };
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

Deno.test("a 2.5 MiB send arrives intact as 1 MiB frames, in both directions", async () => {
  const { a, b } = channelPair();
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

Deno.test("an empty send arrives as an empty chunk, not as the end", async () => {
  const { a, b } = channelPair();
  await a.send(new Uint8Array(0));
  assert.deepEqual(await b.receive(), new Uint8Array(0));
  await a.send(new Uint8Array([1]));
  assert.deepEqual(await b.receive(), new Uint8Array([1]));
  await Promise.all([a.close(), b.close()]);
});

Deno.test("a clean close reaches the other side as null, and stays null", async () => {
  const { a, b } = channelPair();
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

Deno.test("close() waits for a send already under way, so its bytes arrive before the close", async () => {
  const { a, b } = channelPair(64 * 1024);
  const data = random(3 * MAX_FRAME_PLAINTEXT);
  const sending = a.send(data);
  const closing = a.close();
  assert.deepEqual(await receiveAll(b, data.length), data);
  assert.equal(await b.receive(), null);
  await Promise.all([sending, closing, b.close()]);
});

Deno.test("a stream that ends without a close frame is an error (truncated), not a clean end", async () => {
  const { a, b } = channelPair();
  await a.send(new Uint8Array([9]));
  a.abort();
  assert.deepEqual(await b.receive(), new Uint8Array([9]));
  await assert.rejects(b.receive(), isLinkError("truncated"));
  await assert.rejects(b.receive(), isLinkError("truncated"));
  await b.close();
});

Deno.test("a stream cut inside a frame is truncated", async () => {
  const [x, y] = memoryPipe();
  const ch = new SecureChannel(y, {
    send: new CipherState(new Uint8Array(32)),
    receive: new CipherState(new Uint8Array(32)),
  });
  await x.write(encodeFrame(new Uint8Array(100)).subarray(0, 50));
  x.close();
  await assert.rejects(ch.receive(), isLinkError("truncated"));
  await ch.close();
});

Deno.test("a connection reset reads as truncated", async () => {
  const [x, y] = memoryPipe();
  const ch = new SecureChannel(y, {
    send: new CipherState(new Uint8Array(32)),
    receive: new CipherState(new Uint8Array(32)),
  });
  x.outgoing.broken = true;
  x.outgoing.notify();
  await assert.rejects(ch.receive(), isLinkError("truncated"));
  x.close();
  await ch.close();
});

for (const [name, size] of [["small (node:crypto)", 100], ["large (WebCrypto)", 200_000]] as const) {
  Deno.test(`a flipped bit in a ${name} frame is refused as tampered and closes the socket`, async () => {
    const { a, b, x, y } = channelPair();
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
  });
}

Deno.test("a replayed frame fails authentication (implicit nonces)", async () => {
  const { a, b, x } = channelPair();
  x.tamper = (chunk) => [chunk, chunk.slice()];
  await a.send(new Uint8Array([1, 2, 3]));
  assert.deepEqual(await b.receive(), new Uint8Array([1, 2, 3]));
  await assert.rejects(b.receive(), isLinkError("tampered"));
  await Promise.all([a.close(), b.close()]);
});

Deno.test("frames swapped in transit fail authentication", async () => {
  const { a, b, x } = channelPair();
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

Deno.test("an oversize length prefix is refused at once, without waiting for (or allocating) its body", async () => {
  const [x, y] = memoryPipe();
  const ch = new SecureChannel(y, {
    send: new CipherState(new Uint8Array(32)),
    receive: new CipherState(new Uint8Array(32)),
  });
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, MAX_FRAME_LEN + 1);
  await x.write(header);
  await assert.rejects(ch.receive(), isLinkError("too_large"));
  x.close();
  await ch.close();
});

Deno.test("a receive timeout throws timeout, and the frame that comes later is not lost", async () => {
  const { a, b } = channelPair();
  await assert.rejects(b.receive({ timeoutMs: 20 }), isLinkError("timeout"));
  await a.send(new Uint8Array([7, 7]));
  assert.deepEqual(await b.receive({ timeoutMs: 1000 }), new Uint8Array([7, 7]));
  await Promise.all([a.close(), b.close()]);
});

Deno.test("a receive can be cancelled with an AbortSignal", async () => {
  const { a, b } = channelPair();
  const ctl = new AbortController();
  const waiting = b.receive({ signal: ctl.signal });
  ctl.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  await Promise.all([a.close(), b.close()]);
});

Deno.test("two receives at once are a programming error", async () => {
  const { a, b } = channelPair();
  const first = b.receive();
  await assert.rejects(b.receive(), /one at a time/);
  await a.send(new Uint8Array([1]));
  assert.deepEqual(await first, new Uint8Array([1]));
  await Promise.all([a.close(), b.close()]);
});

Deno.test("send resolves only once the socket took the bytes (back-pressure)", async () => {
  const { a, b } = channelPair(64 * 1024);
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

Deno.test("concurrent sends are delivered whole, one after the other", async () => {
  const { a, b } = channelPair(64 * 1024);
  const one = new Uint8Array(1.5 * MAX_FRAME_PLAINTEXT).fill(1);
  const two = new Uint8Array(1.5 * MAX_FRAME_PLAINTEXT).fill(2);
  const sending = Promise.all([a.send(one), a.send(two)]);
  const got = await receiveAll(b, one.length + two.length);
  await sending;
  assert.ok(got.subarray(0, one.length).every((v) => v === 1));
  assert.ok(got.subarray(one.length).every((v) => v === 2));
  await Promise.all([a.close(), b.close()]);
});

Deno.test("close() does not wait for an idle other side to answer", async () => {
  const { a, b } = channelPair();
  const t0 = performance.now();
  await a.close(); // b never reads, so never answers; but it sends nothing either
  const waited = performance.now() - t0;
  assert.ok(waited < 500, `waited ${waited} ms`);
  assert.equal(await b.receive(), null);
  await b.close();
});

Deno.test("close() keeps draining while the other side is still sending, up to the linger", async () => {
  const { a, b } = channelPair(64 * 1024);
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
});

Deno.test("random chunk sequences, split at random points in transit, round-trip in order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.uint8Array({ maxLength: 20_000, size: "max" }), { maxLength: 8 }),
      fc.integer({ min: 1, max: 7000 }),
      async (messages, capacity) => {
        const { a, b, x } = channelPair(capacity);
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
