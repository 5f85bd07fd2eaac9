import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  deriveLinkPsk,
  generateKeyPair,
  HandshakeState,
  type KeyPair,
  LINK_PROLOGUE,
  LinkError,
} from "../../src/protocol/noise.ts";
import { encodeFrame, FrameReader, writeAll } from "../../src/net/secure_channel.ts";
import {
  acceptLink,
  dialLink,
  initiateLink,
  type Link,
  type LinkListener,
  listenLinks,
  type ListenOptions,
} from "../../src/net/link.ts";

const NETWORK_KEY = new Uint8Array(32).fill(0x11);
const OTHER_NETWORK_KEY = new Uint8Array(32).fill(0x22);

const isLinkError = (code: string, message?: RegExp) => (err: unknown) =>
  err instanceof LinkError && err.code === code && (message === undefined || message.test(err.message));

/** A deferred value, for links and errors that arrive through callbacks. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => resolve = r);
  return { promise, resolve };
}

interface Harness {
  listener: LinkListener;
  port: number;
  links: Promise<Link>;
  errors: Promise<LinkError>;
  accepted: Link[];
  dropped: LinkError[];
}

function listen(opts: Partial<ListenOptions> & { staticKey: KeyPair }): Harness {
  const link = deferred<Link>();
  const error = deferred<LinkError>();
  const accepted: Link[] = [];
  const dropped: LinkError[] = [];
  const listener = listenLinks({
    hostname: "127.0.0.1",
    port: 0,
    networkKey: NETWORK_KEY,
    localInfo: { user: "bob", v: 1 },
    onLink: (l) => {
      accepted.push(l);
      link.resolve(l);
    },
    onError: (e) => {
      dropped.push(e);
      error.resolve(e);
    },
    ...opts,
  });
  return {
    listener,
    port: listener.addr.port,
    links: link.promise,
    errors: error.promise,
    accepted,
    dropped,
  };
}

function random(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let off = 0; off < n; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(n, off + 65536)));
  }
  return out;
}

/** Sends `total` random bytes in pieces; returns their SHA-256. */
async function pump(link: Link, total: number, piece: number): Promise<string> {
  const h = createHash("sha256");
  for (let sent = 0; sent < total; sent += piece) {
    const chunk = random(Math.min(piece, total - sent));
    h.update(chunk);
    await link.send(chunk);
  }
  return h.digest("hex");
}

/** Reads exactly `total` bytes; returns their SHA-256. */
async function drain(link: Link, total: number): Promise<string> {
  const h = createHash("sha256");
  let got = 0;
  while (got < total) {
    const chunk = await link.receive({ timeoutMs: 30_000 });
    assert.ok(chunk !== null, `stream ended after ${got} of ${total} bytes`);
    h.update(chunk);
    got += chunk.length;
  }
  assert.equal(got, total);
  return h.digest("hex");
}

/** Reads from a raw socket until EOF (or error); returns how many bytes came. Bounded by `ms`. */
async function readUntilClosed(
  conn: Deno.Conn,
  ms: number,
): Promise<{ bytes: number; closedAfterMs: number }> {
  const t0 = performance.now();
  const buf = new Uint8Array(4096);
  let bytes = 0;
  const deadline = setTimeout(() => conn.close(), ms);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      bytes += n;
    }
  } catch {
    // reset by the listener, or closed by our deadline
  } finally {
    clearTimeout(deadline);
  }
  return { bytes, closedAfterMs: performance.now() - t0 };
}

// ─── Tests ───────────────────────────────────────────────────────────────────────────────────

Deno.test("dialer and listener authenticate each other and learn each other's user id in the handshake", async () => {
  const bob = generateKeyPair();
  const alice = generateKeyPair();
  const h = listen({ staticKey: bob });
  try {
    await using a = await dialLink({
      hostname: "127.0.0.1",
      port: h.port,
      staticKey: alice,
      remoteStatic: bob.publicKey,
      networkKey: NETWORK_KEY,
      localInfo: { user: "alice", v: 1 },
    });
    await using b = await h.links;
    assert.deepEqual(a.remotePayload, { user: "bob", v: 1 });
    assert.deepEqual(b.remotePayload, { user: "alice", v: 1 });
    assert.deepEqual(a.remoteStatic, bob.publicKey);
    assert.deepEqual(b.remoteStatic, alice.publicKey);
    assert.deepEqual(a.handshakeHash, b.handshakeHash);
    assert.equal(a.role, "dialer");
    assert.equal(b.role, "listener");
    assert.match(b.remoteAddr, /^127\.0\.0\.1:\d+$/);
    await a.send(new TextEncoder().encode("hi bob"));
    assert.equal(new TextDecoder().decode((await b.receive())!), "hi bob");
    await b.send(new TextEncoder().encode("hi alice"));
    assert.equal(new TextDecoder().decode((await a.receive())!), "hi alice");
  } finally {
    await h.listener.close();
  }
});

Deno.test("8 MiB of random bytes each way at once arrive intact over 127.0.0.1 (SHA-256)", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob });
  const total = 8 * 1024 * 1024;
  try {
    await using a = await dialLink({
      hostname: "127.0.0.1",
      port: h.port,
      staticKey: generateKeyPair(),
      remoteStatic: bob.publicKey,
      networkKey: NETWORK_KEY,
    });
    await using b = await h.links;
    // Odd piece sizes so sends straddle the 1 MiB frame limit.
    const [sentAB, sentBA, gotAB, gotBA] = await Promise.all([
      pump(a, total, 1_500_000),
      pump(b, total, 300_001),
      drain(b, total),
      drain(a, total),
    ]);
    assert.equal(gotAB, sentAB);
    assert.equal(gotBA, sentBA);
  } finally {
    await h.listener.close();
  }
});

Deno.test("a dialer with the wrong network key is dropped and gives up itself; no application byte moves", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob });
  try {
    await assert.rejects(
      dialLink({
        hostname: "127.0.0.1",
        port: h.port,
        staticKey: generateKeyPair(),
        remoteStatic: bob.publicKey,
        networkKey: OTHER_NETWORK_KEY,
      }),
      isLinkError("network_key", /does not hold the network key/),
    );
    const err = await h.errors;
    assert.ok(
      isLinkError(
        "network_key",
        /^Dropped a connection from 127\.0\.0\.1:\d+: it does not hold the network key\.$/,
      )(err),
      err.message,
    );
    assert.equal(h.accepted.length, 0);
  } finally {
    await h.listener.close();
  }
});

Deno.test("a listener with the wrong network key is refused by the dialer, and drops it in turn", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob, networkKey: OTHER_NETWORK_KEY });
  try {
    await assert.rejects(
      dialLink({
        hostname: "127.0.0.1",
        port: h.port,
        staticKey: generateKeyPair(),
        remoteStatic: bob.publicKey,
        networkKey: NETWORK_KEY,
      }),
      isLinkError("network_key"),
    );
    assert.ok(isLinkError("network_key")(await h.errors));
    assert.equal(h.accepted.length, 0);
  } finally {
    await h.listener.close();
  }
});

Deno.test("an impostor at the right address (another link key) is refused by the dialer", async () => {
  const published = generateKeyPair(); // what the host told us
  const impostor = generateKeyPair(); // who now holds that IP address and port
  const h = listen({ staticKey: impostor }); // it even holds the network key
  try {
    await assert.rejects(
      dialLink({
        hostname: "127.0.0.1",
        port: h.port,
        staticKey: generateKeyPair(),
        remoteStatic: published.publicKey,
        networkKey: NETWORK_KEY,
      }),
      isLinkError(
        "wrong_peer",
        /^127\.0\.0\.1:\d+ closed the connection during the handshake: it is busy, or not the peer we looked for \(its key is not the one published\)\.$/,
      ),
    );
    assert.ok(isLinkError("handshake", /not addressed to our link key/)(await h.errors));
    assert.equal(h.accepted.length, 0);
  } finally {
    await h.listener.close();
  }
});

Deno.test("a stranger that connects and says nothing is dropped after the handshake timeout", async () => {
  const h = listen({ staticKey: generateKeyPair(), handshakeTimeoutMs: 200 });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
    const { bytes, closedAfterMs } = await readUntilClosed(conn, 5_000);
    try {
      conn.close();
    } catch { /* closed by readUntilClosed's deadline */ }
    assert.equal(bytes, 0);
    assert.ok(closedAfterMs >= 150 && closedAfterMs < 4_000, `dropped after ${closedAfterMs} ms`);
    assert.ok(isLinkError("timeout", /did not finish the handshake within 0\.2 s/)(await h.errors));
  } finally {
    await h.listener.close();
  }
});

Deno.test("a stranger that sends garbage is dropped at once and learns nothing", async (t) => {
  const garbage: [string, Uint8Array][] = [
    [
      "an HTTP request (length prefix far over the limit)",
      new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
    ],
    [
      "a well-formed frame of random bytes",
      (() => {
        const body = random(200);
        const f = new Uint8Array(4 + body.length);
        new DataView(f.buffer).setUint32(0, body.length);
        f.set(body, 4);
        return f;
      })(),
    ],
  ];
  for (const [name, bytes] of garbage) {
    await t.step(name, async () => {
      const h = listen({ staticKey: generateKeyPair() });
      try {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
        await conn.write(bytes);
        const { bytes: got, closedAfterMs } = await readUntilClosed(conn, 5_000);
        try {
          conn.close();
        } catch { /* already closed */ }
        assert.equal(got, 0, "the stranger got a reply");
        assert.ok(closedAfterMs < 2_000, `dropped only after ${closedAfterMs} ms`);
        const err = await h.errors;
        assert.ok(
          isLinkError("handshake", /^Dropped a connection from 127\.0\.0\.1:\d+: /)(err),
          err.message,
        );
        assert.equal(h.accepted.length, 0);
      } finally {
        await h.listener.close();
      }
    });
  }
});

Deno.test("a stranger who knows the listener's key but not the network key gets no link, even by bluffing past message 2", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
    const hs = HandshakeState.initiator({
      s: generateKeyPair(),
      rs: bob.publicKey,
      psk: deriveLinkPsk(OTHER_NETWORK_KEY),
      prologue: LINK_PROLOGUE,
    });
    const reader = new FrameReader(conn);
    await writeAll(conn, encodeFrame(hs.writeMessage(new TextEncoder().encode('{"user":"mallory"}'))));
    const reply = await reader.readFrame(65535);
    assert.ok(reply !== null);
    assert.throws(() => hs.readMessage(reply), isLinkError("handshake")); // cannot read bob's reply
    await writeAll(conn, encodeFrame(random(64))); // a made-up "confirmation"
    const err = await h.errors;
    assert.ok(isLinkError("network_key", /it does not hold the network key\.$/)(err), err.message);
    assert.equal(h.accepted.length, 0);
    conn.close();
  } finally {
    await h.listener.close();
  }
});

Deno.test("a clean close is seen as null by the other side", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob });
  try {
    const a = await dialLink({
      hostname: "127.0.0.1",
      port: h.port,
      staticKey: generateKeyPair(),
      remoteStatic: bob.publicKey,
      networkKey: NETWORK_KEY,
    });
    await using b = await h.links;
    await a.send(new Uint8Array([1, 2, 3]));
    const closing = a.close();
    assert.deepEqual(await b.receive(), new Uint8Array([1, 2, 3]));
    assert.equal(await b.receive(), null);
    await closing;
    assert.ok(a.closed);
  } finally {
    await h.listener.close();
  }
});

/** A raw TCP pair on loopback, so a test can cut the socket under a link. */
async function rawPair(): Promise<{ client: Deno.TcpConn; server: Deno.TcpConn }> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  return { client, server };
}

Deno.test("a TCP stream cut without a close frame is an error on the other side, not a clean end", async () => {
  const bob = generateKeyPair();
  const alice = generateKeyPair();
  const { client, server } = await rawPair();
  const [a, b] = await Promise.all([
    initiateLink(client, { staticKey: alice, remoteStatic: bob.publicKey, networkKey: NETWORK_KEY }),
    acceptLink(server, { staticKey: bob, networkKey: NETWORK_KEY, peer: "alice" }),
  ]);
  await a.send(new Uint8Array([5]));
  assert.deepEqual(await b.receive(), new Uint8Array([5]));
  client.close(); // the raw socket, under the link: no close frame
  await assert.rejects(b.receive({ timeoutMs: 5_000 }), isLinkError("truncated", /was cut/));
  await a.close(); // closing a link whose socket is already gone is harmless
  await b.close();
});

/**
 * A man in the middle on loopback: forwards both ways and flips one bit at byte `flipAt` of the
 * listener → dialer direction.
 */
function tamperingProxy(target: number, flipAt: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const copy = async (from: Deno.Conn, to: Deno.Conn, flip: number | null) => {
    const buf = new Uint8Array(16 * 1024);
    let seen = 0;
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (flip !== null && seen <= flip && flip < seen + n) buf[flip - seen] ^= 0x01;
        seen += n;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch {
      // one side went away
    }
    for (const c of [from, to]) {
      try {
        c.close();
      } catch { /* closed */ }
    }
  };
  const running = (async () => {
    const inbound = await listener.accept();
    const outbound = await Deno.connect({ hostname: "127.0.0.1", port: target });
    conns.push(inbound, outbound);
    await Promise.all([copy(inbound, outbound, null), copy(outbound, inbound, flipAt)]);
  })();
  return {
    port: listener.addr.port,
    async close() {
      listener.close();
      await running;
    },
  };
}

Deno.test("ciphertext tampered with in transit is refused, and the link is dropped", async () => {
  const bob = generateKeyPair();
  const h = listen({ staticKey: bob, localInfo: { user: "bob", v: 1 } });
  // Message 2 is 4 (length) + 32 (e) + JSON payload + 16 (tag); flip inside the first frame after it.
  const msg2Len = 4 + 32 + new TextEncoder().encode(JSON.stringify({ user: "bob", v: 1 })).length + 16;
  const proxy = tamperingProxy(h.port, msg2Len + 12);
  try {
    await using a = await dialLink({
      hostname: "127.0.0.1",
      port: proxy.port,
      staticKey: generateKeyPair(),
      remoteStatic: bob.publicKey,
      networkKey: NETWORK_KEY,
    });
    await using b = await h.links;
    await b.send(new TextEncoder().encode("this will be damaged on the way"));
    await assert.rejects(a.receive({ timeoutMs: 5_000 }), isLinkError("tampered", /failed authentication/));
    // The dialer closed its socket; the listener sees a cut, not a clean end.
    await assert.rejects(b.receive({ timeoutMs: 5_000 }), isLinkError("truncated"));
  } finally {
    await proxy.close();
    await h.listener.close();
  }
});

Deno.test("dialling a port where nobody listens fails with a connect error", async () => {
  const port = (() => {
    using l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return l.addr.port;
  })();
  await assert.rejects(
    dialLink({
      hostname: "127.0.0.1",
      port,
      staticKey: generateKeyPair(),
      remoteStatic: generateKeyPair().publicKey,
      networkKey: NETWORK_KEY,
    }),
    isLinkError("connect", /^Cannot connect to 127\.0\.0\.1:\d+: the connection was refused\.$/),
  );
});

Deno.test("a dialer gives up on an address that accepts TCP but never answers the handshake", async () => {
  using silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = silent.accept();
  const t0 = performance.now();
  await assert.rejects(
    dialLink({
      hostname: "127.0.0.1",
      port: silent.addr.port,
      staticKey: generateKeyPair(),
      remoteStatic: generateKeyPair().publicKey,
      networkKey: NETWORK_KEY,
      timeoutMs: 200,
    }),
    isLinkError("timeout", /^127\.0\.0\.1:\d+ did not finish the link handshake within 0\.2 s\.$/),
  );
  assert.ok(performance.now() - t0 < 2_000);
  (await accepting).close();
});

Deno.test("closing the listener drops connections still in their handshake and stops accepting", async () => {
  const h = listen({ staticKey: generateKeyPair(), handshakeTimeoutMs: 60_000 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: h.port });
  await new Promise((r) => setTimeout(r, 50)); // let the listener accept it
  const reading = readUntilClosed(conn, 5_000);
  await h.listener.close();
  const { bytes, closedAfterMs } = await reading;
  try {
    conn.close();
  } catch { /* closed */ }
  assert.equal(bytes, 0);
  assert.ok(closedAfterMs < 4_000);
  await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: h.port }), Deno.errors.ConnectionRefused);
});

Deno.test("a listener serves several dialers at once, each with its own keys", async () => {
  const bob = generateKeyPair();
  const links: Link[] = [];
  const all = deferred<void>();
  const listener = listenLinks({
    hostname: "127.0.0.1",
    port: 0,
    staticKey: bob,
    networkKey: NETWORK_KEY,
    localInfo: { user: "bob" },
    onLink: async (link) => {
      links.push(link);
      const m = await link.receive();
      await link.send(m!);
      if (links.length === 3) all.resolve();
    },
  });
  try {
    const dialers = await Promise.all(["a", "b", "c"].map((user) =>
      dialLink({
        hostname: "127.0.0.1",
        port: listener.addr.port,
        staticKey: generateKeyPair(),
        remoteStatic: bob.publicKey,
        networkKey: NETWORK_KEY,
        localInfo: { user },
      })
    ));
    for (const [i, d] of dialers.entries()) await d.send(new Uint8Array([i]));
    for (const [i, d] of dialers.entries()) assert.deepEqual(await d.receive(), new Uint8Array([i]));
    await all.promise;
    assert.deepEqual(links.map((l) => l.remotePayload.user).sort(), ["a", "b", "c"]);
    await Promise.all([...dialers, ...links].map((l) => l.close()));
  } finally {
    await listener.close();
  }
});

Deno.test("a flood of silent connections does not lock a member out: the newest takes the place of an old silent one", async () => {
  const published = generateKeyPair();
  const h = listen({ staticKey: published });
  const silent: Deno.TcpConn[] = [];
  try {
    // Many sources' worth of silent connections (all from 127.0.0.1 here: one source).
    for (let i = 0; i < 300; i++) silent.push(await Deno.connect({ hostname: "127.0.0.1", port: h.port }));
    const link = await dialLink({
      hostname: "127.0.0.1",
      port: h.port,
      staticKey: generateKeyPair(),
      remoteStatic: published.publicKey,
      networkKey: NETWORK_KEY,
      localInfo: { user: "member" },
      timeoutMs: 5_000,
    });
    assert.equal((await h.links).remotePayload.user, "member");
    await link.close();
  } finally {
    for (const c of silent) {
      try {
        c.close();
      } catch { /* dropped by the listener */ }
    }
    await h.listener.close();
  }
});
