/**
 * `deno run --allow-net deno_proxy.ts LISTEN_PORT TARGET_PORT`: the plainest TCP forwarder Deno
 * allows (one read and one write per chunk, no crypto, no framing), on 127.0.0.1. `bench link`
 * puts two of them, as separate processes like the two tunnel nodes, between its pinger and the
 * echo: the latency floor of Deno's socket I/O, beside ssh -L and the tunnel.
 */
const [listenPort, targetPort] = Deno.args.map(Number);

async function pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (let n = await from.read(buf); n !== null; n = await from.read(buf)) {
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
    await to.closeWrite();
  } catch {
    // one side went away: the other pump ends too
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port: listenPort });

for await (const conn of listener) {
  conn.setNoDelay(true);
  void (async () => {
    const target = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
    target.setNoDelay(true);
    await Promise.all([pump(conn, target), pump(target, conn)]);
    conn.close();
    target.close();
  })().catch(() => conn.close());
}
