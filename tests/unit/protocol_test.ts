import assert from "node:assert/strict";
import fc from "fast-check";
import {
  generateKeyText,
  KEY_PREFIX,
  networkKeyFromSecret,
  parseNetworkKey,
} from "../../src/protocol/keys.ts";
import { open, seal } from "../../src/protocol/seal.ts";
import { ARMOR_BEGIN, openText, sealToText } from "../../src/protocol/envelope.ts";
import {
  decodeMessage,
  encodeMessage,
  KIND,
  MAX_INTRO_PEERS,
  MAX_INTRO_WINDOW_MS,
  type Message,
  type PeerEntry,
  reachAt,
  type Request,
} from "../../src/protocol/messages.ts";
import { type Candidate, type MappingBehaviour, MAX_CANDIDATES } from "../../src/protocol/candidate.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { b64u, utf8 } from "../../src/protocol/bytes.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(7));
const otherKey = networkKeyFromSecret(new Uint8Array(32).fill(8));
const bytes = (n: number, v = 1) => new Uint8Array(n).fill(v);

const request: Request = {
  kind: "request",
  user: "alice",
  host: "203.0.113.7",
  port: 47001,
  ...reachAt("203.0.113.7", 47001),
  quiet: false,
  probe: false,
  session: bytes(16, 2),
  linkKey: bytes(32, 3),
  time: Date.UTC(2026, 10, 24),
  nonce: bytes(16, 4),
  replyTo: "alice@isp-a.test",
};

const isProtocolError = (code?: string) => (e: unknown) =>
  e instanceof ProtocolError && (code === undefined || e.code === code);

Deno.test("keygen prints a key that parses back to the same secret", async () => {
  const text = generateKeyText(() => bytes(32, 9));
  assert.ok(text.startsWith(KEY_PREFIX));
  const k = await parseNetworkKey(text);
  assert.deepEqual(k.secret, bytes(32, 9));
  assert.equal(k.source, "key");
  assert.notEqual(generateKeyText(), generateKeyText());
});

Deno.test("a key with a typo is refused by its checksum", async () => {
  const text = generateKeyText(() => bytes(32, 9));
  const typo = text.slice(0, 10) + (text[10] === "A" ? "B" : "A") + text.slice(11);
  await assert.rejects(() => parseNetworkKey(typo), isProtocolError("invalid"));
  await assert.rejects(() => parseNetworkKey(text.slice(0, -3)), isProtocolError("invalid"));
});

Deno.test("a passphrase is stretched into the same key for everyone, and short ones are refused", async () => {
  const a = await parseNetworkKey("correct horse battery");
  const b = await parseNetworkKey("  correct horse battery ");
  assert.deepEqual(a.secret, b.secret);
  assert.equal(a.source, "passphrase");
  // scrypt N=2^17 r=8 p=1, salt "mailmeet network key v1": pinned so a change of parameters is noticed.
  assert.equal(a.secret.toHex(), "20f6bb48ff06939402c044aed4d6db48ff809d5246edf17b0a6ca12acfbeae2b");
  await assert.rejects(() => parseNetworkKey("short"), isProtocolError("invalid"));
});

Deno.test("seal opens with the same key and kind only", () => {
  const sealed = seal(key.mailKey, KIND.request, utf8("hello"));
  assert.deepEqual(open(key.mailKey, sealed).plaintext, utf8("hello"));
  assert.throws(() => open(otherKey.mailKey, sealed), isProtocolError("unsealed"));
  const rekinded = sealed.slice();
  rekinded[1] = KIND.reply; // a request replayed as a reply
  assert.throws(() => open(key.mailKey, rekinded), isProtocolError("unsealed"));
  const flipped = sealed.slice();
  flipped[20] ^= 1;
  assert.throws(() => open(key.mailKey, flipped), isProtocolError("unsealed"));
  const future = sealed.slice();
  future[0] = 9;
  assert.throws(() => open(key.mailKey, future), isProtocolError("unsupported"));
});

Deno.test("a sealed mail body shows no address, user id, e-mail address or key in clear", () => {
  const text = sealToText(key, request);
  for (const secret of ["203.0.113.7", "47001", "alice", "isp-a.test", b64u(request.linkKey)]) {
    assert.ok(!text.includes(secret), `"${secret}" appears in clear`);
  }
  assert.ok(text.includes(ARMOR_BEGIN));
  assert.ok(text.startsWith("This message was sent automatically by mailmeet"));
  assert.deepEqual(openText(key, text), request);
});

Deno.test("the same message sealed twice looks different", () => {
  assert.notEqual(sealToText(key, request), sealToText(key, request));
});

Deno.test("a body quoted in a reply (with > and spaces) still opens", () => {
  const quoted = sealToText(key, request).split("\r\n").map((l) => `> ${l}`).join("\n");
  assert.deepEqual(openText(key, quoted), request);
});

Deno.test("mail without a block, with broken base64, or with the wrong key is a typed error", () => {
  assert.throws(() => openText(key, "hello"), isProtocolError("malformed"));
  assert.throws(
    () => openText(key, `${ARMOR_BEGIN}\n!!!\n-----END MAILMEET MESSAGE-----`),
    isProtocolError("malformed"),
  );
  assert.throws(() => openText(otherKey, sealToText(key, request)), isProtocolError("unsealed"));
});

Deno.test("decoding rejects fields that are missing, of the wrong size, or out of range", () => {
  const good = JSON.parse(new TextDecoder().decode(encodeMessage(request).bytes));
  const bad: Record<string, unknown>[] = [
    { ...good, u: "" },
    { ...good, u: "a\u0000b" },
    { ...good, u: "x".repeat(65) },
    { ...good, h: "not an address!" },
    { ...good, p: 0 },
    { ...good, p: 70000 },
    { ...good, s: b64u(bytes(8)) },
    { ...good, k: "***" },
    { ...good, t: 12 },
    { ...good, r: "no-at-sign" },
    { ...good, r: "a@b.test, c@d.test" },
  ];
  for (const w of bad) {
    assert.throws(
      () => decodeMessage(KIND.request, utf8(JSON.stringify(w))),
      isProtocolError("invalid"),
      JSON.stringify(w),
    );
  }
  assert.throws(() => decodeMessage(KIND.request, utf8("[1,2]")), isProtocolError("invalid"));
  assert.throws(() => decodeMessage(99, utf8("{}")), isProtocolError("unsupported"));
});

Deno.test("IPv6 literals and host names are valid addresses", () => {
  for (const host of ["2001:db8::1", "::1", "peer.dyndns.example"]) {
    const m = { ...request, host };
    assert.deepEqual(decodeMessage(KIND.request, encodeMessage(m).bytes), m);
  }
});

const arbBytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const arbUser = fc.string({ minLength: 1, maxLength: 20, unit: "grapheme" }).filter((s) =>
  s.trim() === s && !/[\p{Cc}\p{Cf}]/u.test(s)
);
const arbHost = fc.oneof(fc.ipV4(), fc.ipV6(), fc.domain());
const arbTime = fc.integer({ min: 1_600_000_000_000, max: 4_000_000_000_000 });
const rec = <T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }) => fc.record(model, { noNullPrototype: true });
const arbPort = fc.integer({ min: 1, max: 65535 });
const arbCandidate = fc.oneof(
  rec<Candidate>({
    kind: fc.constantFrom("lan", "ipv6", "mapped", "public", "advertised"),
    transport: fc.constantFrom("tcp", "udp"),
    host: fc.oneof(fc.ipV4(), fc.ipV6()),
    port: arbPort,
  }),
  rec<Candidate>({
    kind: fc.constant("advertised"),
    transport: fc.constant("tcp"),
    host: fc.domain(),
    port: arbPort,
  }),
);
const arbReach = {
  candidates: fc.array(arbCandidate, { maxLength: MAX_CANDIDATES }),
  mapping: fc.constantFrom("eim", "symmetric", "unknown") as fc.Arbitrary<MappingBehaviour>,
  relay: fc.boolean(),
  role: fc.constantFrom("peer", "relay") as fc.Arbitrary<"peer" | "relay">,
};
const arbEntry = rec<PeerEntry>({
  user: arbUser,
  host: arbHost,
  port: arbPort,
  linkKey: arbBytes(32),
  seen: arbTime,
  flagged: fc.boolean(),
  ...arbReach,
});
const arbMail = fc.emailAddress().map((s) => s.toLowerCase());
const arbMessage: fc.Arbitrary<Message> = fc.oneof(
  rec({
    kind: fc.constant("request" as const),
    user: arbUser,
    host: arbHost,
    port: fc.integer({ min: 1, max: 65535 }),
    session: arbBytes(16),
    linkKey: arbBytes(32),
    time: arbTime,
    nonce: arbBytes(16),
    replyTo: arbMail,
    quiet: fc.boolean(),
    probe: fc.boolean(),
    ...arbReach,
  }),
  rec({
    kind: fc.constant("leave" as const),
    user: arbUser,
    linkKey: arbBytes(32),
    time: arbTime,
    nonce: arbBytes(16),
  }),
  rec({
    kind: fc.constant("intro" as const),
    peers: fc.array(arbEntry, { minLength: 1, maxLength: MAX_INTRO_PEERS }),
    time: arbTime,
    nonce: arbBytes(16),
    window: fc.integer({ min: 0, max: MAX_INTRO_WINDOW_MS }),
  }),
  rec({
    kind: fc.constant("reply" as const),
    session: arbBytes(16),
    time: arbTime,
    peers: fc.array(arbEntry, { maxLength: 8 }),
  }),
  rec({
    kind: fc.constant("failure" as const),
    user: arbUser,
    target: arbUser,
    targetKey: arbBytes(32),
    time: arbTime,
    nonce: arbBytes(16),
  }),
  rec({
    kind: fc.constant("sync" as const),
    host: arbMail,
    entries: fc.array(arbEntry, { maxLength: 8 }),
    want: fc.boolean(),
    visited: fc.array(arbMail, { maxLength: 5 }),
    time: arbTime,
    nonce: arbBytes(16),
  }),
);

Deno.test("property: every message round-trips through seal and mail text", () => {
  fc.assert(
    fc.property(arbMessage, (m) => {
      const back = openText(key, sealToText(key, m));
      assert.deepEqual(back, m);
    }),
    { numRuns: 300 },
  );
});

Deno.test("property: arbitrary text in a mailmeet block raises only ProtocolError", () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 400 }), fc.uint8Array({ maxLength: 300 }), (s, raw) => {
      for (
        const body of [
          s,
          `${ARMOR_BEGIN}\n${s}\n-----END MAILMEET MESSAGE-----`,
          `${ARMOR_BEGIN}\n${raw.toBase64()}\n-----END MAILMEET MESSAGE-----`,
        ]
      ) {
        try {
          openText(key, body);
        } catch (e) {
          if (!(e instanceof ProtocolError)) throw e;
        }
      }
    }),
    { numRuns: 500 },
  );
});
