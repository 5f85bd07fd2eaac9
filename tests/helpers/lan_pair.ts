/**
 * Two machines for LAN-discovery tests: two network namespaces joined by a veth pair (lab
 * addresses 198.51.100.1 and .2, RFC 5737), each with its own loopback, so what one machine
 * broadcasts on its loopback is heard there only. Torn down on dispose, whatever happened.
 */
export interface LanPair extends AsyncDisposable {
  /** Namespace names and addresses of the two machines. */
  a: { ns: string; ip: string };
  b: { ns: string; ip: string };
}

async function ip(...args: string[]): Promise<void> {
  const r = await new Deno.Command("ip", { args, stdout: "null", stderr: "piped" }).output();
  if (!r.success) throw new Error(`ip ${args.join(" ")}: ${new TextDecoder().decode(r.stderr).trim()}`);
}

/** Why the pair cannot be built here (not root, no `ip`), or undefined. */
export async function lanPairSkipReason(): Promise<string | undefined> {
  if (Deno.uid() !== 0) return "needs root for network namespaces";
  try {
    await ip("netns", "list");
  } catch (err) {
    return `no ip netns: ${(err as Error).message}`;
  }
  return undefined;
}

export async function lanPair(): Promise<LanPair> {
  const tag = crypto.randomUUID().slice(0, 6);
  const a = { ns: `mmlan-${tag}-a`, ip: "198.51.100.1" };
  const b = { ns: `mmlan-${tag}-b`, ip: "198.51.100.2" };
  const [va, vb] = [`mml${tag}a`, `mml${tag}b`];
  const down = async () => {
    for (const x of [a, b]) await ip("netns", "del", x.ns).catch(() => {});
  };
  try {
    await ip("netns", "add", a.ns);
    await ip("netns", "add", b.ns);
    await ip("link", "add", va, "type", "veth", "peer", "name", vb);
    for (const [x, v] of [[a, va], [b, vb]] as const) {
      await ip("link", "set", v, "netns", x.ns);
      await ip("-n", x.ns, "addr", "add", `${x.ip}/24`, "dev", v);
      await ip("-n", x.ns, "link", "set", v, "up");
      await ip("-n", x.ns, "link", "set", "lo", "up");
      // Games join multicast groups on the default interface: give the groups a route.
      await ip("-n", x.ns, "route", "add", "224.0.0.0/4", "dev", v);
    }
  } catch (err) {
    await down();
    await ip("link", "del", va).catch(() => {});
    throw err;
  }
  return { a, b, [Symbol.asyncDispose]: down };
}
