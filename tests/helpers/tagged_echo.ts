/**
 * A TCP service that answers each connection's first read with `tag:` and what it read, and a
 * client for it: which of several tunnelled services a connection reached.
 */

export function taggedEcho(tag: string) {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const c of l) {
      (async () => {
        const buf = new Uint8Array(1024);
        const n = await c.read(buf);
        if (n !== null) {
          await c.write(new TextEncoder().encode(`${tag}:${new TextDecoder().decode(buf.subarray(0, n))}`));
        }
        c.close();
      })().catch(() => {});
    }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    [Symbol.asyncDispose]: async () => {
      l.close();
      await serving.catch(() => {});
    },
  };
}

/** Sends `text` to `port` and reads until the other side closes. */
export async function ask(port: number, text: string): Promise<string> {
  const c = await Deno.connect({ hostname: "127.0.0.1", port });
  await c.write(new TextEncoder().encode(text));
  let got = "";
  const buf = new Uint8Array(1024);
  for (let n = await c.read(buf); n !== null; n = await c.read(buf)) {
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  c.close();
  return got;
}
