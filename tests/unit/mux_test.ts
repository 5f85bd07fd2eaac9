import assert from "node:assert/strict";
import fc from "fast-check";
import {
  CHUNK,
  CREDIT_THRESHOLD,
  DATAGRAM_QUEUE_BYTES,
  GAME_CREDIT,
  GAME_FRAME,
  GAME_INFLIGHT,
  GAME_MS,
  Mux,
  MuxError,
  type MuxOptions,
  type MuxStream,
  PROBE_GIVE_UP_MS,
  STREAM_WINDOW,
} from "../../src/net/mux.ts";
import { encodeHeader, MessageReader, MSG } from "../../src/net/mux_frame.ts";
import { MIN_BULK_RATE } from "../../src/net/bulk_pacer.ts";
import { concat } from "../../src/protocol/bytes.ts";
import { ManualClock } from "../helpers/manual_clock.ts";
import { ends } from "../helpers/mem_pipe.ts";
import { xorshiftBytes } from "../helpers/xorshift_bytes.ts";

function pair(a: MuxOptions = {}, b: MuxOptions = {}, capacity?: number) {
  const [x, y] = ends(capacity);
  // No CPU pressure unless a test gives one: the machine running the tests must not pace them.
  const calm = { cpuStall: () => null };
  return { a: new Mux(x, { peer: "b", ...calm, ...a }), b: new Mux(y, { peer: "a", ...calm, ...b }), x, y };
}

async function readAll(s: MuxStream): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (let c = await s.read(); c !== null; c = await s.read()) {
    parts.push(c.slice());
    n += c.length;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const bytes = xorshiftBytes;

/** Lets queued microtasks and timers run (in-memory pipes settle within a few turns). */
const settle = () => new Promise((r) => setTimeout(r, 0));

async function shut(...muxes: Mux[]): Promise<void> {
  await Promise.all(muxes.map((m) => m.close()));
}

// ─── Tests ──────────────────────────────────────────────────────────────────────────────────────

Deno.test("a stream carries protocol and metadata, data both ways, and half-closes cleanly each way", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({}, { onStream: (s) => accepted.resolve(s) });
  const s = a.open("echo", { port: 7 });
  await s.write(new TextEncoder().encode("ping"));
  s.closeWrite();
  const t = await accepted.promise;
  assert.equal(t.protocol, "echo");
  assert.deepEqual(t.meta, { port: 7 });
  assert.equal(new TextDecoder().decode(await readAll(t)), "ping"); // null after the FIN
  // Half-closed one way, the other way still works.
  await t.write(new TextEncoder().encode("pong"));
  t.closeWrite();
  assert.equal(new TextDecoder().decode(await readAll(s)), "pong");
  await Promise.all([s.done, t.done]);
  assert.equal(a.streamCount, 0);
  assert.equal(b.streamCount, 0);
  await shut(a, b);
});

Deno.test("many streams at once, written in random pieces, each arrives whole and in order", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.array(fc.integer({ min: 0, max: 40_000 }), { minLength: 1, maxLength: 6 }), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.integer({ min: 1, max: 6 }),
      async (plans, capacity) => {
        const got = new Map<string, Promise<Uint8Array>>();
        const { a, b } = pair({ window: 64 * 1024 }, {
          window: 64 * 1024,
          onStream: (s) => got.set(s.meta as string, readAll(s)),
        }, capacity);
        const sent = plans.map((sizes, i) => {
          const data = bytes(sizes.reduce((x, y) => x + y, 0), i + 1);
          return { name: `s${i}`, data, sizes };
        });
        await Promise.all(sent.map(async ({ name, data, sizes }) => {
          const s = a.open("bulk", name);
          let at = 0;
          for (const n of sizes) {
            await s.write(data.subarray(at, at + n));
            at += n;
          }
          s.closeWrite();
        }));
        await settle();
        for (const { name, data } of sent) assert.deepEqual(await got.get(name), data, name);
        await shut(a, b);
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("a reader that stops stalls only its own stream: the writer waits at the window, others flow", async () => {
  const streams: MuxStream[] = [];
  const { a, b } = pair({ window: 32 * 1024 }, { window: 32 * 1024, onStream: (s) => streams.push(s) });
  const slow = a.open("slow");
  let slowWritten = 0;
  const writing = (async () => {
    for (let i = 0; i < 16; i++) {
      await slow.write(new Uint8Array(8 * 1024));
      slowWritten += 8 * 1024;
    }
  })();
  // Another stream moves a megabyte while nobody reads the slow one.
  const fast = a.open("fast");
  const big = bytes(1024 * 1024, 9);
  const sending = fast.write(big).then(() => fast.closeWrite());
  await settle();
  assert.deepEqual(await readAll(streams[1]), big);
  await sending;
  assert.equal(slowWritten, 32 * 1024, "the slow stream's writer stopped at its window");
  // Reading the slow stream releases its writer.
  let read = 0;
  while (read < 128 * 1024) read += (await streams[0].read())!.length;
  await writing;
  assert.equal(slowWritten, 128 * 1024);
  await shut(a, b);
});

Deno.test("a sender that overruns the window it was given loses the link", async () => {
  const [x, y] = ends();
  const b = new Mux(y, { window: 1024, onStream: () => {} });
  // A hand-made peer: OPEN stream 1, then 2000 bytes of DATA with only 1024 of credit.
  const open = new TextEncoder().encode(JSON.stringify({ p: "x" }));
  const msg = (type: number, id: number, body: Uint8Array) => {
    const h = new Uint8Array(9);
    const v = new DataView(h.buffer);
    v.setUint8(0, type);
    v.setUint32(1, id);
    v.setUint32(5, body.length);
    return [h, body];
  };
  await x.sendv([...msg(1, 1, open), ...msg(2, 1, new Uint8Array(2000))]);
  const reason = await b.closed;
  assert.match(reason ?? "", /more than its window/);
});

Deno.test("reset: the other side's reads and writes fail with the reason; a stream nobody takes is refused", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({}, {
    onStream: (s) =>
      s.protocol === "nobody" ? s.reset(`nothing here takes "nobody" streams`) : accepted.resolve(s),
  });
  const s = a.open("chat");
  await s.write(new Uint8Array(10));
  const t = await accepted.promise;
  t.reset("disk full");
  await assert.rejects(s.read(), (e: unknown) => e instanceof MuxError && /disk full/.test(e.message));
  await assert.rejects(s.write(new Uint8Array(1)), /disk full/);
  await assert.rejects(s.done, /disk full/);
  const r = a.open("nobody");
  await assert.rejects(r.read(), /nothing here takes "nobody" streams/);

  const { a: c, b: d } = pair(); // no onStream at all
  await assert.rejects(c.open("file").read(), /nothing here takes "file" streams/);
  await shut(a, b, c, d);
});

Deno.test("a second read() while one is waiting is refused with code busy, and the first still gets the data", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({}, { onStream: (s) => accepted.resolve(s) });
  const s = a.open("chat");
  const t = await accepted.promise;
  const first = t.read();
  await assert.rejects(t.read(), (e: unknown) => e instanceof MuxError && e.code === "busy");
  await s.write(new TextEncoder().encode("hi"));
  assert.equal(new TextDecoder().decode((await first)!), "hi");
  // Once the first read() returned, the next one is fine.
  s.closeWrite();
  assert.equal(await t.read(), null);
  await shut(a, b);
});

Deno.test("a second write() while one waits for credit is refused with code busy, and the first still completes in order", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({ window: 1024 }, { window: 1024, onStream: (s) => accepted.resolve(s) });
  const s = a.open("bulk");
  // Two writes in one turn that both fit the window are not concurrent: neither waits.
  await Promise.all([s.write(bytes(256, 1)), s.write(bytes(256, 2))]);
  const first = s.write(bytes(4096, 3)); // more than the window left: waits for credit
  await settle();
  await assert.rejects(s.write(bytes(16, 4)), (e: unknown) => e instanceof MuxError && e.code === "busy");
  const t = await accepted.promise;
  const reading = readAll(t);
  await first;
  s.closeWrite();
  const got = await reading;
  assert.deepEqual(got, new Uint8Array([...bytes(256, 1), ...bytes(256, 2), ...bytes(4096, 3)]));
  await shut(a, b);
});

Deno.test("open() with metadata over the limit throws and leaves no stream behind, nor uses up an id", async () => {
  const opened: MuxStream[] = [];
  const { a, b } = pair({}, { onStream: (s) => opened.push(s) });
  assert.throws(() => a.open("big", "x".repeat(20_000)), RangeError);
  assert.equal(a.streamCount, 0);
  const s = a.open("small");
  assert.equal(s.id, 1, "the dialer's first stream id is still free");
  await settle();
  assert.deepEqual(opened.map((t) => [t.id, t.protocol]), [[1, "small"]]);
  await shut(a, b);
});

Deno.test("small messages written in one turn share one frame", async () => {
  const { a, b, x } = pair({}, { onStream: () => {} });
  const before = x.sent;
  for (let i = 0; i < 50; i++) void a.open("chat").write(new TextEncoder().encode(`line ${i}`));
  await settle();
  assert.equal(x.sent - before, 1);
  await shut(a, b);
});

Deno.test("a stream alone fills a frame as one message; streams side by side take turns of CHUNK bytes", async () => {
  const chunkSizes = async (writers: number): Promise<number[][]> => {
    const got: Promise<number[]>[] = [];
    const { a, b } = pair({}, {
      onStream: (s) =>
        got.push((async () => {
          const sizes: number[] = [];
          for (let c = await s.read(); c !== null; c = await s.read()) sizes.push(c.length);
          return sizes;
        })()),
    });
    await Promise.all(Array.from({ length: writers }, async (_, i) => {
      const s = a.open("bulk");
      await s.write(bytes(4 * CHUNK, i + 1));
      s.closeWrite();
    }));
    while (got.length < writers) await settle();
    const sizes = await Promise.all(got);
    await shut(a, b);
    return sizes;
  };
  const [alone] = await chunkSizes(1);
  assert.equal(alone.reduce((x, y) => x + y, 0), 4 * CHUNK);
  assert.ok(alone[0] > CHUNK, `the lone stream's first chunk is a frame's worth (${alone[0]} bytes)`);
  for (const sizes of await chunkSizes(2)) {
    assert.equal(sizes.reduce((x, y) => x + y, 0), 4 * CHUNK);
    assert.ok(Math.max(...sizes) <= CHUNK, `with another stream waiting, turns stay within CHUNK (${sizes})`);
  }
});

Deno.test("datagrams carry their channel, and are dropped (not queued) when the link is busy", async () => {
  const got: [number, string][] = [];
  const { a, b, x } = pair({}, { onDatagram: (ch, d) => got.push([ch, new TextDecoder().decode(d)]) });
  assert.ok(a.sendDatagram(7, new TextEncoder().encode("hello")));
  assert.ok(a.sendDatagram(4_000_000_000, new TextEncoder().encode("world")));
  assert.ok(!a.sendDatagram(1, new Uint8Array(70_000)), "too large for one datagram");
  await settle();
  assert.deepEqual(got, [[7, "hello"], [4_000_000_000, "world"]]);

  const unstall = Promise.withResolvers<void>();
  x.stalled = unstall.promise;
  assert.ok(a.sendDatagram(1, new Uint8Array(100))); // this one starts a send that stalls
  await settle();
  let accepted = 0;
  while (a.sendDatagram(2, new Uint8Array(1000))) accepted++;
  assert.equal(accepted, Math.floor(DATAGRAM_QUEUE_BYTES / 1000));
  assert.equal(a.droppedDatagrams, 1);
  x.stalled = null;
  unstall.resolve();
  await a.close();
  await b.close();
  assert.equal(got.length, 3 + accepted);
});

Deno.test("when the link is cut, every open stream fails with the reason and the mux reports it", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b, y } = pair({}, { onStream: (s) => accepted.resolve(s) });
  const s = a.open("file");
  await s.write(new Uint8Array(100));
  const t = await accepted.promise;
  y.abort();
  assert.match((await a.closed) ?? "", /cut/);
  await assert.rejects(s.read(), (e: unknown) => e instanceof MuxError && e.code === "closed");
  await assert.rejects(s.write(new Uint8Array(1)), /cut/);
  assert.ok(b.isClosed || (await b.closed) !== undefined);
  await assert.rejects(t.done);
  assert.throws(() => a.open("again"), MuxError);
});

Deno.test("a clean close ends streams still open with 'closed' and resolves closed with no reason", async () => {
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({}, { onStream: (s) => accepted.resolve(s) });
  const s = a.open("chat");
  await s.write(new TextEncoder().encode("bye"));
  const t = await accepted.promise;
  await a.close();
  assert.equal(await a.closed, undefined);
  assert.equal(await b.closed, undefined);
  await assert.rejects(s.read(), /closed/);
  // What arrived before the close is still readable? No: the stream failed; the link is gone.
  await assert.rejects(t.done, /closed/);
});

Deno.test("sent(position) resolves only once the link took the bytes, so their buffer may be reused", async () => {
  const { a, b, x } = pair({}, { onStream: () => {} });
  const s = a.open("bulk");
  const unstall = Promise.withResolvers<void>();
  x.stalled = unstall.promise;
  await s.write(new Uint8Array(1000));
  let done = false;
  const sent = s.sent(s.written).then(() => done = true);
  await settle();
  assert.equal(done, false, "not while the link holds the frame back");
  x.stalled = null;
  unstall.resolve();
  await sent;
  assert.equal(s.written, 1000);
  await shut(a, b);
});

Deno.test("a received frame goes back to the link only when every chunk of it was read past", async () => {
  const streams: MuxStream[] = [];
  const { a, b, y } = pair({}, { onStream: (s) => streams.push(s) });
  const s1 = a.open("one");
  const s2 = a.open("two");
  // One frame carries data of both streams.
  void s1.write(new Uint8Array(10).fill(1));
  void s2.write(new Uint8Array(10).fill(2));
  await settle();
  const [t1, t2] = streams;
  const c1 = await t1.read();
  assert.deepEqual(c1, new Uint8Array(10).fill(1));
  assert.equal(y.recycled.length, 0, "stream two still holds the frame");
  await t2.read();
  assert.equal(y.recycled.length, 0, "the chunks just read are still in use");
  await s1.write(new Uint8Array(5));
  await s2.write(new Uint8Array(5));
  await t1.read(); // moving on releases the first chunk of stream one
  assert.equal(y.recycled.length, 0);
  await t2.read(); // … and of stream two: the first frame is free
  assert.ok(y.recycled.length >= 1);
  assert.equal(y.recycled[0], c1!.buffer);
  await shut(a, b);
});

Deno.test("a chunk just read stays the application's when its stream fails: its frame goes back only at the next read()", async () => {
  for (const how of ["the peer resets the stream", "the link ends"]) {
    const streams: MuxStream[] = [];
    const { a, b, y } = pair({}, { onStream: (s) => streams.push(s) });
    const s = a.open("bulk");
    await s.write(new Uint8Array(10).fill(7));
    await settle();
    const chunk = await streams[0].read();
    assert.deepEqual(chunk, new Uint8Array(10).fill(7));
    if (how === "the link ends") await a.close();
    else s.reset("stopped");
    await settle();
    // A receiver writing this chunk to a file must find it unchanged: the frame is not back yet.
    assert.ok(!y.recycled.includes(chunk!.buffer as ArrayBuffer), `${how}: recycled under the reader`);
    await assert.rejects(streams[0].read(), how === "the link ends" ? /closed/ : /reset/);
    assert.ok(y.recycled.includes(chunk!.buffer as ArrayBuffer), `${how}: the next read() gives it back`);
    await shut(a, b);
  }
});

Deno.test("an idle link carries keepalive pings, and a peer silent past the limit is cut", async () => {
  const clock = new ManualClock();
  const opts = { clock, keepaliveMs: 20, deadAfterMs: 200 };
  const { a, b, x, y } = pair(opts, opts);
  /** Moves the clock on in keepalive ticks (every 10 ms), letting the pings cross between ticks. */
  const pass = async (ms: number) => {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(10);
      await settle();
    }
  };
  await pass(300);
  assert.ok(x.sent >= 3 && y.sent >= 3, `pings sent: ${x.sent}, ${y.sent}`);
  assert.equal(a.isClosed || b.isClosed, false, "both alive while pinging");
  // b goes silent: its socket takes nothing any more (a machine that lost power)
  y.stalled = new Promise(() => {});
  await pass(300);
  assert.ok(a.isClosed, "a cut the link once b was silent past deadAfterMs");
  assert.match((await a.closed) ?? "", /has not been heard from/);
  b.abort();
});

Deno.test("while datagrams flow, a bulk stream keeps little in flight and small frames; once they stopped, its whole window", async () => {
  const clock = new ManualClock();
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b, x } = pair({ clock }, { clock, onStream: (t) => accepted.resolve(t) });
  const s = a.open("bulk", {});
  // A game's datagram: from now on (for GAME_MS) bulk yields to datagrams.
  assert.ok(a.sendDatagram(1, new Uint8Array(64)));
  const writing = s.write(new Uint8Array(2 * STREAM_WINDOW));
  await settle();
  await settle();
  assert.equal(s.written, GAME_INFLIGHT, "no more than GAME_INFLIGHT unconsumed at the other side");
  assert.ok(x.sent >= GAME_INFLIGHT / GAME_FRAME, `small frames (${x.sent} for ${GAME_INFLIGHT} bytes)`);
  // No datagram for GAME_MS: as the reader consumes, the writer may fill the whole window again.
  clock.advance(GAME_MS);
  const t = await accepted.promise;
  let consumed = 0;
  while (consumed < GAME_INFLIGHT) consumed += (await t.read())!.length;
  for (let i = 0; i < 4; i++) await settle();
  // (Credit comes back in CREDIT_THRESHOLD steps: up to one step of what was read is not granted yet.)
  const inFlight = s.written - consumed;
  assert.ok(inFlight > STREAM_WINDOW - CREDIT_THRESHOLD, `the whole window in flight again (${inFlight})`);
  s.reset("done");
  await writing.catch(() => {});
  await shut(a, b);
});

Deno.test("while datagrams flow, the reader grants credit in small steps, so the writer moves on with little in flight", async () => {
  const clock = new ManualClock();
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({ clock }, { clock, onStream: (t) => accepted.resolve(t) });
  const s = a.open("bulk", {});
  assert.ok(a.sendDatagram(1, new Uint8Array(64)));
  const writing = s.write(new Uint8Array(STREAM_WINDOW));
  for (let i = 0; i < 3; i++) await settle();
  assert.equal(s.written, GAME_INFLIGHT);
  const t = await accepted.promise;
  let consumed = 0;
  while (consumed < GAME_CREDIT) consumed += (await t.read())!.length;
  for (let i = 0; i < 3; i++) await settle();
  // Granted after GAME_CREDIT (not CREDIT_THRESHOLD) was read: the writer went on, GAME_INFLIGHT ahead.
  assert.ok(consumed < CREDIT_THRESHOLD);
  assert.equal(s.written, consumed + GAME_INFLIGHT, `written ${s.written}, consumed ${consumed}`);
  s.reset("done");
  await writing.catch(() => {});
  await shut(a, b);
});

Deno.test("while datagrams flow, a writer facing a reader that grants only in large steps (an earlier version) runs ahead far enough after GAME_MS", async () => {
  // Each side keeps its own time: the reader's says no datagram came lately, so it grants in
  // CREDIT_THRESHOLD steps as earlier versions did; the writer's says a game plays.
  const [ca, cb] = [new ManualClock(), new ManualClock()];
  const accepted = Promise.withResolvers<MuxStream>();
  const { a, b } = pair({ clock: ca }, { clock: cb, onStream: (t) => accepted.resolve(t) });
  const s = a.open("bulk", {});
  const quietReader = async () => {
    for (let i = 0; i < 3; i++) await settle();
    cb.advance(GAME_MS + 1);
  };
  assert.ok(a.sendDatagram(1, new Uint8Array(64)));
  const writing = s.write(new Uint8Array(STREAM_WINDOW));
  await quietReader();
  const t = await accepted.promise;
  let consumed = 0;
  while (consumed < GAME_INFLIGHT) consumed += (await t.read())!.length;
  await quietReader();
  assert.equal(
    s.written,
    GAME_INFLIGHT,
    "stuck: the reader waits for CREDIT_THRESHOLD, the writer for a grant",
  );
  // The game goes on; a GAME_MS without any grant tells the writer what kind of reader it faces.
  ca.advance(GAME_MS / 2);
  assert.ok(a.sendDatagram(1, new Uint8Array(64)));
  await quietReader();
  ca.advance(GAME_MS / 2);
  await quietReader();
  assert.equal(s.written, 2 * CREDIT_THRESHOLD, "twice the reader's step in flight");
  while (consumed < CREDIT_THRESHOLD) consumed += (await t.read())!.length;
  await quietReader();
  assert.ok(s.written > 2 * CREDIT_THRESHOLD, `granted, and on it goes (${s.written})`);
  s.reset("done");
  await writing.catch(() => {});
  await shut(a, b);
});

/**
 * Holds back the probes (PINGs with an id) on their way into `end`'s mux, as if its peer ignored
 * them (an earlier version); `release()` lets the held ones through with the next frame.
 */
function holdProbes(end: ReturnType<typeof ends>[1]): { release(): void } {
  const receive = end.receive.bind(end);
  const held: Uint8Array[] = [];
  let releasing = false;
  end.receive = async () => {
    const frame = await receive();
    if (frame === null) return null;
    const r = new MessageReader();
    const kept: Uint8Array[] = releasing ? held.splice(0) : [];
    r.start(frame);
    while (r.next()) {
      const message = [encodeHeader(r.type, r.id, r.body.length), r.body.slice()];
      if (r.type === MSG.PING && r.id !== 0 && !releasing) held.push(...message);
      else kept.push(...message);
    }
    return concat(...kept);
  };
  return { release: () => releasing = true };
}

/** Writes until the stream fails (a file bigger than any test runs for), a turn of the event loop between writes. */
async function endlessWriter(s: MuxStream): Promise<void> {
  try {
    for (;;) {
      await s.write(new Uint8Array(256 * 1024));
      await settle();
    }
  } catch {
    // reset at the end of the test
  }
}

/**
 * A game on a link (a datagram every step of a manual clock) while one stream moves bulk data
 * without end from `a` to `b`. `holdProbes`: `b` acts as an earlier version (see holdProbes).
 */
async function gameWithBulk(opts: { cpuStall?: () => number | null; holdProbes?: boolean } = {}) {
  const clock = new ManualClock();
  const [x, y] = ends();
  const probes = opts.holdProbes ? holdProbes(y) : undefined;
  const accepted = Promise.withResolvers<MuxStream>();
  const a = new Mux(x, { peer: "b", clock, cpuStall: opts.cpuStall ?? (() => null) });
  const b = new Mux(y, { peer: "a", clock, cpuStall: () => null, onStream: (t) => accepted.resolve(t) });
  const s = a.open("bulk", {});
  assert.ok(a.sendDatagram(1, new Uint8Array(64)));
  const writing = endlessWriter(s);
  await settle();
  const reading = readAll(await accepted.promise).catch(() => new Uint8Array(0));
  /** Moves the clock on `ms` in steps (`each` first), a game datagram after each, letting frames cross. */
  const play = async (ms: number, step = 50, each = () => {}) => {
    for (let t = 0; t < ms; t += step) {
      each();
      clock.advance(step);
      a.sendDatagram(1, new Uint8Array(64));
      for (let j = 0; j < 3; j++) await settle();
    }
  };
  const end = async () => {
    s.reset("done");
    await writing;
    await reading;
    await shut(a, b);
  };
  return { a, s, clock, probes: probes!, play, end };
}

Deno.test("while a game plays, bulk data carries probes the other side echoes, and CPU pressure paces the writer", async () => {
  let stall = 0; // µs: every task always waiting for a CPU
  const { a, s, clock, play, end } = await gameWithBulk({ cpuStall: () => stall });
  for (let i = 0; i < 40 && a.pacer.rate === null; i++) await play(10, 10, () => stall += 10_000);
  assert.ok(a.probeEchoes > 0, "probes came back");
  assert.ok(a.pacer.rate !== null, "paced once the CPUs were all taken");
  assert.ok(a.pacer.rate! >= MIN_BULK_RATE * 1000);
  // Paced: without time passing, the writer sends nothing more.
  const before = s.written;
  for (let j = 0; j < 5; j++) await settle();
  assert.equal(s.written, before, "waits for its tokens");
  // A small write (a chat line, a round-trip probe) is not held behind the file's debt.
  const chat = a.open("chat", {});
  const chatting = chat.write(new Uint8Array(100));
  for (let j = 0; j < 3; j++) await settle();
  assert.equal(chat.written, 100, "queued at once, the clock standing still");
  clock.advance(1000);
  await chatting;
  for (let j = 0; j < 5; j++) await settle();
  assert.ok(s.written > before, "and goes on as time passes");
  await end();
});

Deno.test("a peer that does not echo probes (an earlier version) is probed no more, and bulk data goes unpaced", async () => {
  const { a, s, play, end } = await gameWithBulk({ holdProbes: true });
  await play(PROBE_GIVE_UP_MS + 150);
  assert.equal(a.probeEchoes, 0);
  assert.equal(a.probing, false, "gave up probing");
  assert.equal(a.pacer.rate, null, "unpaced, as before probing existed");
  assert.ok(s.written > GAME_INFLIGHT, `bulk moved (${s.written})`);
  await end();
});

Deno.test("an echo that comes later than PROBE_GIVE_UP_MS (a queue that long) shows the peer echoes: probing goes on", async () => {
  const { a, probes, play, end } = await gameWithBulk({ holdProbes: true });
  await play(PROBE_GIVE_UP_MS + 100);
  assert.equal(a.probing, false);
  probes.release();
  await play(200);
  assert.ok(a.probeEchoes >= 1, "the late echo came");
  assert.equal(a.probing, true, "probing again");
  await end();
});

Deno.test("a reader woken by a frame acts on it before the mux asks its link for the next frame", async () => {
  // The order matters on a tunnel's round trip: the reader's socket write goes out first, and
  // setting up the link's next read (a few µs) comes after it, off the data's way.
  const log: string[] = [];
  const incoming: ((frame: Uint8Array | null) => void)[] = [];
  const link = {
    role: "listener" as const,
    sendv: () => Promise.resolve(),
    receive: () => {
      log.push("receive");
      return new Promise<Uint8Array | null>((resolve) => incoming.push(resolve));
    },
    close: () => Promise.resolve(),
    abort: () => {},
  };
  const m = new Mux(link, { cpuStall: () => null, keepaliveMs: 0 });
  const s = m.open("echo"); // ours: the listener's ids are even
  const got = s.read().then((chunk) => log.push(`read ${chunk?.length}`));
  await settle();
  assert.deepEqual(log, ["receive"]);
  const body = new TextEncoder().encode("hi");
  incoming.shift()!(concat(encodeHeader(MSG.DATA, s.id, body.length), body));
  await got;
  await settle();
  assert.deepEqual(log, ["receive", "read 2", "receive"]);
  m.abort();
});
