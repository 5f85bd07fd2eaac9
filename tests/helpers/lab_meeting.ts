/**
 * A meeting place in the NAT lab (tests/helpers/natlab.ts) for end-to-end tests and benchmarks:
 * one lab, a maildir spool on the shared filesystem (so only links cross the routers), fresh hosts
 * in the lab's public namespace, and CLI processes on the sites' hosts with the lab's STUN servers
 * and port mapping on.
 */
import { type CliProcess, ensureBundle, spawnCli } from "../../scripts/lib/cli_process.ts";
import { generateKeyText } from "../../src/protocol/keys.ts";
import { type NatKind, type NatLab, natLab, type SiteSpec } from "./natlab.ts";
import { is } from "./events.ts";

/** The router kinds every pair of which must link. */
export const KINDS: NatKind[] = ["full-cone", "port-restricted", "symmetric", "forward", "upnp"];
/** The port a `forward` router forwards (TCP and UDP) to its host, and the node listens on. */
export const FORWARDED = 47000;

export const siteName = (kind: NatKind, i: number) => `${kind.replace(/[^a-z]/g, "").slice(0, 8)}${i}`;

export interface Meeting extends AsyncDisposable {
  lab: NatLab;
  dir: string;
  key: string;
  /** A fresh host (own table) in the lab's public namespace; returns its mailbox address. */
  host(name: string, extra?: string[]): Promise<{ address: string; proc: CliProcess }>;
  /** A CLI process on host 0 of `site`, meeting through `via`. */
  node(name: string, site: string, kind: NatKind, via: string, args: string[], stdin?: boolean): CliProcess;
}

export async function meeting(sites: SiteSpec[]): Promise<Meeting> {
  await ensureBundle();
  const lab = await natLab({
    sites: sites.map((s) => ({
      ...s,
      ...(s.nat === "forward" ? { forward: { tcp: [FORWARDED], udp: [FORWARDED] } } : {}),
    })),
    publicHosts: ["hub"],
  });
  const dir = await Deno.makeTempDir({ prefix: "mailmeet-lab-" });
  const spool = `maildir://${dir}/spool`;
  const key = generateKeyText();
  const procs: CliProcess[] = [];
  const env = {
    MAILMEET_STUN: lab.stunServers.join(","),
    MAILMEET_NO_PORT_MAPPING: "false",
    XDG_CONFIG_HOME: `${dir}/config`,
    XDG_DATA_HOME: `${dir}/data`,
  };
  const common = (
    address: string,
  ) => ["--address", address, "--smtp", spool, "--inbox", spool, "--key", key, "--json"];
  return {
    lab,
    dir,
    key,
    async host(name, extra = []) {
      const address = `${name}@hub.test`;
      const proc = spawnCli(
        name,
        ["host", ...common(address), "--db", `${dir}/${name}.db`, ...extra],
        env,
        undefined,
        {
          netns: lab.publicHost("hub").ns,
        },
      );
      procs.push(proc);
      await proc.waitFor(is("info"), 20_000, `${name} hosting`);
      return { address, proc };
    },
    node(name, site, kind, via, args, stdin) {
      const listen = kind === "forward" ? ["--listen", `0.0.0.0:${FORWARDED}`] : [];
      const proc = spawnCli(
        name,
        [...args, ...common(`${name}@home.test`), "--via", via, ...listen],
        env,
        undefined,
        { netns: lab.host(site).ns, stdin },
      );
      procs.push(proc);
      return proc;
    },
    async [Symbol.asyncDispose]() {
      await Promise.allSettled(procs.map((p) => p[Symbol.asyncDispose]()));
      await lab[Symbol.asyncDispose]();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
