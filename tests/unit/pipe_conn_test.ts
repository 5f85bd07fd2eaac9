import assert from "node:assert/strict";
import { pipeConn } from "../../src/apps/app_host.ts";
import { Mux, type MuxTransport } from "../../src/net/mux.ts";

/** Lets queued microtasks and timers run. */
const settle = () => new Promise((r) => setTimeout(r, 0));

/** A socket whose reads return `chunks` one by one, then wait for ever; every call is logged. */
function scriptedSocket(chunks: Uint8Array[], log: string[]): Deno.TcpConn {
  return {
    read(p: Uint8Array): Promise<number | null> {
      log.push("socket read");
      const next = chunks.shift();
      if (next === undefined) return new Promise(() => {});
      p.set(next);
      return Promise.resolve(next.length);
    },
    write: (p: Uint8Array) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close: () => {},
  } as unknown as Deno.TcpConn;
}

Deno.test("a tunnel sends what its socket gave to the link before it sets up the next socket read", async () => {
  // On a round trip's way: the seal and the link write come first, the next read (a few µs) after.
  const log: string[] = [];
  const link: MuxTransport = {
    role: "dialer",
    sendv: () => {
      log.push("link send");
      return Promise.resolve();
    },
    receive: () => new Promise(() => {}),
    close: () => Promise.resolve(),
    abort: () => {},
  };
  const mux = new Mux(link, { cpuStall: () => null, keepaliveMs: 0 });
  const stream = mux.open("tunnel");
  await settle(); // the OPEN goes out
  log.length = 0;
  void pipeConn(scriptedSocket([Uint8Array.of(1, 2, 3), Uint8Array.of(4)], log), stream);
  await settle();
  assert.deepEqual(log, ["socket read", "link send", "socket read", "link send", "socket read"]);
  mux.abort();
});
