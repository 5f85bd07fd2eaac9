/**
 * TCP tunnels end to end over an in-memory link (tests/helpers/linked_pair.ts): a local port on
 * our side, a service on loopback on the member's side.
 */
import assert from "node:assert/strict";
import type { AppEvent } from "../../src/apps/app_host.ts";
import { TunnelExpose, TunnelLocal } from "../../src/apps/tunnel.ts";
import { linkedPair } from "../helpers/linked_pair.ts";
import { xorshiftBytes } from "../helpers/xorshift_bytes.ts";

/** A TCP service that sends back every byte it reads, half-closing once the client has. */
function echoServer() {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(64 * 1024);
        for (let n = await c.read(buf); n !== null; n = await c.read(buf)) {
          let off = 0;
          while (off < n) off += await c.write(buf.subarray(off, n));
        }
        c.close();
      })().catch(() => {});
    }
  })();
  return {
    port: l.addr.port,
    async [Symbol.asyncDispose]() {
      l.close();
      await serving.catch(() => {});
    },
  };
}

/** Events of one app, with a promise for the first that matches. */
function eventsUntil(pred: (e: AppEvent) => boolean) {
  const list: AppEvent[] = [];
  const got = Promise.withResolvers<AppEvent>();
  return {
    list,
    got: got.promise,
    sink: (e: AppEvent) => {
      list.push(e);
      if (pred(e)) got.resolve(e);
    },
  };
}

async function readAll(c: Deno.TcpConn): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  const buf = new Uint8Array(64 * 1024);
  for (let got = await c.read(buf); got !== null; got = await c.read(buf)) {
    parts.push(buf.slice(0, got));
    n += got;
  }
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("a TCP echo through the tunnel brings back every byte of 12 MiB (reads growing to a frame's worth), and the client's half-close reaches the service", async () => {
  await using pair = await linkedPair();
  await using echo = echoServer();
  const expose = new TunnelExpose({ port: echo.port, udp: false, emit: () => {} });
  pair.theirs.attach(expose);
  const target = eventsUntil((e) => e.event === "tunnel_target");
  const local = new TunnelLocal({ port: 0, remote: echo.port, udp: false, emit: target.sink });
  await local.start();
  pair.ours.attach(local);
  await target.got;
  const data = xorshiftBytes(12 * 1024 * 1024 + 7, 0x9e3779b9);
  const c = await Deno.connect({ hostname: "127.0.0.1", port: local.port });
  const [, back] = await Promise.all([
    (async () => {
      let off = 0;
      while (off < data.length) off += await c.write(data.subarray(off));
      await c.closeWrite();
    })(),
    readAll(c),
  ]);
  c.close();
  assert.equal(back.length, data.length);
  assert.deepEqual(back, data);
  await local.close();
  await expose.close();
});

Deno.test("a connection to an exposed port nothing listens on is refused: the member says why and our connection closes", async () => {
  await using pair = await linkedPair();
  const free = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = free.addr.port;
  free.close(); // nothing listens there now
  const refused = eventsUntil((e) => e.event === "tunnel_refused");
  const expose = new TunnelExpose({ port, udp: false, emit: refused.sink });
  pair.theirs.attach(expose);
  const target = eventsUntil((e) => e.event === "tunnel_target");
  const ended = eventsUntil((e) => e.event === "tunnel_closed");
  const local = new TunnelLocal({
    port: 0,
    remote: port,
    udp: false,
    emit: (e) => {
      target.sink(e);
      ended.sink(e);
    },
  });
  await local.start();
  pair.ours.attach(local);
  await target.got;
  const c = await Deno.connect({ hostname: "127.0.0.1", port: local.port });
  const said = await refused.got;
  assert.equal(said.peer, "me");
  assert.match(String(said.reason), new RegExp(`nothing answers on port ${port}`));
  assert.match(String((await ended.got).reason), /nothing answers/);
  assert.equal(await c.read(new Uint8Array(16)).catch(() => null), null, "our side sees the end");
  c.close();
  await local.close();
  await expose.close();
});
