import assert from "node:assert/strict";
import { openUdpPort, type UdpAddress } from "../../src/net/udp_port.ts";

/** A port on 127.0.0.1 that hands each datagram (a copy, and the view's buffer) to a queue. */
async function listening(backend: "deno" | "node") {
  const got: { data: Uint8Array; buffer: ArrayBufferLike; from: UdpAddress }[] = [];
  let wake = () => {};
  const port = await openUdpPort({
    hostname: "127.0.0.1",
    port: 0,
    backend,
    onMessage: (data, from) => {
      got.push({ data: data.slice(), buffer: data.buffer, from });
      wake();
    },
  });
  const next = async () => {
    while (got.length === 0) await new Promise<void>((r) => wake = r);
    return got.shift()!;
  };
  return { port, next };
}

for (const backend of ["deno", "node"] as const) {
  Deno.test(`udp port (${backend}): a datagram arrives with its sender, and the answer sent there arrives back`, async () => {
    const a = await listening(backend);
    const b = await listening(backend);
    try {
      a.port.send(Uint8Array.of(1, 2, 3), { address: "127.0.0.1", port: b.port.port });
      const m = await b.next();
      assert.deepEqual([...m.data], [1, 2, 3]);
      assert.equal(m.from.port, a.port.port);
      b.port.send(Uint8Array.of(9), m.from);
      assert.deepEqual([...(await a.next()).data], [9]);
    } finally {
      await a.port.close();
      await b.port.close();
    }
  });

  Deno.test(`udp port (${backend}): a port in use is refused, and a closed port sends nothing and ends its reading`, async () => {
    const a = await listening(backend);
    await assert.rejects(
      openUdpPort({ hostname: "127.0.0.1", port: a.port.port, backend, onMessage: () => {} }),
    );
    await a.port.close();
    a.port.send(Uint8Array.of(1), { address: "127.0.0.1", port: 9 }); // no throw after close
    await a.port.close(); // twice is fine
  });
}

Deno.test("udp port (deno): every datagram is read into the same buffer, none allocated per datagram", async () => {
  const a = await listening("deno");
  const b = await listening("deno");
  try {
    const to = { address: "127.0.0.1", port: b.port.port };
    a.port.send(Uint8Array.of(1), to);
    const first = await b.next();
    a.port.send(Uint8Array.of(2, 2), to);
    const second = await b.next();
    assert.deepEqual([...second.data], [2, 2]);
    assert.equal(first.buffer, second.buffer);
  } finally {
    await a.port.close();
    await b.port.close();
  }
});
