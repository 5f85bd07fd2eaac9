import assert from "node:assert/strict";
import { concat } from "../../src/protocol/bytes.ts";
import fc from "fast-check";
import {
  decodeCredit,
  decodeOpen,
  decodeReset,
  encodeCredit,
  encodeHeader,
  encodeLaneDatagram,
  encodeOpen,
  encodeReset,
  HEADER_BYTES,
  laneChannel,
  MAX_CONTROL_PAYLOAD,
  MessageReader,
  MSG,
  MuxFrameError,
  type MuxFrameErrorCode,
} from "../../src/net/mux_frame.ts";

interface Message {
  type: number;
  id: number;
  body: Uint8Array;
}

const u32 = fc.integer({ min: 0, max: 0xffff_ffff });

const message: fc.Arbitrary<Message> = fc.oneof(
  fc.record({
    type: fc.constantFrom(MSG.OPEN, MSG.DATA, MSG.FIN, MSG.RESET, MSG.DGRAM, MSG.PING),
    id: u32,
    body: fc.uint8Array({ maxLength: 300 }),
  }),
  fc.record({ type: fc.constant(MSG.CREDIT), id: u32, body: u32.map(encodeCredit) }),
).map(({ type, id, body }) => ({ type, id, body })); // plain objects, as decode() builds them

function encode(messages: readonly Message[]): Uint8Array {
  return concat(...messages.flatMap((m) => [encodeHeader(m.type, m.id, m.body.length), m.body]));
}

/** What a receiver sees of one frame: its messages (copied), or the error that refused it. */
function decode(frame: Uint8Array, reader = new MessageReader()): { got: Message[]; error?: MuxFrameError } {
  const got: Message[] = [];
  reader.start(frame);
  try {
    while (reader.next()) got.push({ type: reader.type, id: reader.id, body: reader.body.slice() });
  } catch (err) {
    if (!(err instanceof MuxFrameError)) throw err;
    return { got, error: err };
  }
  return { got };
}

function refusedWith(frame: Uint8Array, code: MuxFrameErrorCode): void {
  const { error } = decode(frame);
  assert.ok(error, "the frame was refused");
  assert.equal(error.code, code);
}

// ─── Tests ──────────────────────────────────────────────────────────────────────────────────────

Deno.test("the header is type u8, id u32, length u32, big-endian: the bytes of the first mux version", () => {
  // The first version wrote headers with DataView.setUint32 (big-endian); peers of it must still interoperate.
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 255 }), u32, u32, (type, id, length) => {
      const old = new Uint8Array(HEADER_BYTES);
      const v = new DataView(old.buffer);
      v.setUint8(0, type);
      v.setUint32(1, id);
      v.setUint32(5, length);
      assert.deepEqual(encodeHeader(type, id, length), old);
    }),
  );
  assert.deepEqual(encodeHeader(MSG.DATA, 0x01020304, 5), new Uint8Array([2, 1, 2, 3, 4, 0, 0, 0, 5]));
  assert.deepEqual(encodeCredit(0x00040000), new Uint8Array([0, 4, 0, 0]));
  assert.deepEqual(
    encodeLaneDatagram(0x63dd8001, new Uint8Array([9])),
    new Uint8Array([0x63, 0xdd, 0x80, 1, 9]),
  );
  assert.deepEqual(encodeOpen("echo", { port: 7 }), new TextEncoder().encode('{"p":"echo","m":{"port":7}}'));
});

Deno.test("messages decode to what was encoded, however the batch is split into frames at message boundaries", () => {
  fc.assert(
    fc.property(
      fc.array(message, { maxLength: 20 }),
      fc.array(fc.nat(), { maxLength: 5 }),
      (messages, cuts) => {
        // One reader for every frame, as the mux keeps it.
        const reader = new MessageReader();
        assert.deepEqual(decode(encode(messages), reader), { got: messages });
        const bounds = [...new Set(cuts.map((c) => c % (messages.length + 1)))].sort((x, y) => x - y);
        const got: Message[] = [];
        let from = 0;
        for (const to of [...bounds, messages.length]) {
          const frame = decode(encode(messages.slice(from, to)), reader);
          assert.equal(frame.error, undefined);
          got.push(...frame.got);
          from = to;
        }
        assert.deepEqual(got, messages);
      },
    ),
  );
});

Deno.test("a frame cut inside a message is refused (truncated or overrun), after the whole messages before the cut", () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 10 }), fc.nat(), (messages, at) => {
      const frame = encode(messages);
      const boundaries = new Set<number>();
      let end = 0;
      for (const m of messages) boundaries.add(end += HEADER_BYTES + m.body.length);
      const cut = at % frame.length;
      fc.pre(cut > 0 && !boundaries.has(cut));
      const { got, error } = decode(frame.subarray(0, cut));
      assert.ok(error instanceof MuxFrameError);
      assert.ok(error.code === "truncated" || error.code === "overrun", error.code);
      const whole = [...boundaries].filter((b) => b <= cut).length;
      assert.deepEqual(got, messages.slice(0, whole));
    }),
  );
});

Deno.test("a length beyond the frame, an unknown type, or a credit that is not 4 bytes is refused with its code", () => {
  refusedWith(concat(encodeHeader(MSG.DATA, 1, 0xffff_ffff), new Uint8Array(100)), "overrun");
  refusedWith(new Uint8Array([MSG.DATA, 0, 0, 0, 1, 0, 0]), "truncated");
  for (const type of [0, 8, 255]) refusedWith(encodeHeader(type, 1, 0), "unknown_type");
  refusedWith(concat(encodeHeader(MSG.CREDIT, 1, 3), new Uint8Array(3)), "malformed");
  refusedWith(concat(encodeHeader(MSG.CREDIT, 1, 8), new Uint8Array(8)), "malformed");
  const { error } = decode(encodeHeader(9, 1, 0));
  assert.match(error?.message ?? "", /unknown message type 9/);
  assert.equal(decode(new Uint8Array(0)).got.length, 0, "an empty frame holds no messages");
});

Deno.test("OPEN, CREDIT and RESET payloads round-trip; oversized metadata and non-JSON are refused", () => {
  fc.assert(
    fc.property(fc.string(), fc.option(fc.jsonValue(), { nil: undefined }), (protocol, meta) => {
      const body = encodeOpen(protocol, meta);
      const opened = decodeOpen(body);
      assert.equal(opened.protocol, protocol);
      assert.deepEqual(opened.meta, meta === undefined ? undefined : JSON.parse(JSON.stringify(meta)));
    }),
  );
  fc.assert(fc.property(u32, (n) => assert.equal(decodeCredit(encodeCredit(n)), n)));
  assert.equal(decodeReset(encodeReset("disk full")), "disk full");
  assert.equal(decodeReset(encodeReset("x".repeat(5000))).length, 1000, "a reason is cut to 1000 characters");

  assert.throws(() => encodeOpen("big", "x".repeat(MAX_CONTROL_PAYLOAD)), RangeError);
  assert.throws(
    () => decodeOpen(new Uint8Array(MAX_CONTROL_PAYLOAD + 1)),
    (e: unknown) => e instanceof MuxFrameError && e.code === "too_large",
  );
  assert.throws(
    () => decodeOpen(new TextEncoder().encode("{not json")),
    (e: unknown) => e instanceof MuxFrameError && e.code === "malformed",
  );
  assert.deepEqual(decodeOpen(new TextEncoder().encode('{"p":7}')), { protocol: "", meta: undefined });
});

Deno.test("a lane datagram carries its channel in front; one too short for a channel is told apart", () => {
  fc.assert(
    fc.property(u32, fc.uint8Array({ maxLength: 100 }), (channel, data) => {
      const d = encodeLaneDatagram(channel, data);
      assert.equal(laneChannel(d), channel);
      assert.deepEqual(d.subarray(4), data);
    }),
  );
  assert.equal(laneChannel(new Uint8Array(3)), -1);
});
