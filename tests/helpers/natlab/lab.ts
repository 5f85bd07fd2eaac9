/**
 * The NAT lab as a disposable handle: `await using lab = await natLab({ sites: [...] });`.
 *
 * Creation sweeps namespaces left by dead runs, plans the topology (plan.ts), creates every
 * namespace and link in a few batched `ip` calls, loads each router's nftables ruleset, and starts
 * coturn and miniupnpd inside their namespaces. Disposal kills every process started in a lab
 * namespace and deletes the namespaces; so do SIGINT, SIGTERM and the process's `unload`.
 */
import {
  coturnConfig,
  MINIUPNPD,
  miniupnpdConfig,
  NATPMP_PORT,
  openSockets,
  procSocketAddress,
  TURN_PASSWORD,
  TURN_REALM,
  TURN_USER,
  TURNSERVER,
} from "./daemons.ts";
import { LabError } from "./errors.ts";
import { TABLE, UPNP_CHAINS } from "./nft.ts";
import { type HostPlan, type LabPlan, LAN, planLab, type RouterPlan, type SitePlan } from "./plan.ts";
import type { LabSpec } from "./spec.ts";
import { parseLeaseFile, parseUpnpChain, type PortLease, type PortMapping } from "./upnp.ts";
import {
  destroyNamespaces,
  destroyNamespacesSync,
  ipBatch,
  netnsExec,
  run,
  type RunOptions,
  type RunResult,
  sweepStale,
} from "./system.ts";
import { ensureTools, labSkipReason } from "./tools.ts";

export type { LabSpec, NatKind, SiteSpec } from "./spec.ts";
export type { RunResult } from "./system.ts";
export type { PortLease, PortMapping } from "./upnp.ts";

const DAEMON_START_TIMEOUT_MS = 15_000;
const DAEMON_POLL_MS = 10;
/** After SIGTERM, how long a process gets to exit before SIGKILL. */
const KILL_GRACE_MS = 2_000;
const TMP = Deno.env.get("TMPDIR") ?? "/tmp";

export type LabHost = HostPlan;
export type LabRouter = RouterPlan;

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: "piped" | "inherit" | "null";
  stdout?: "piped" | "inherit" | "null";
  stderr?: "piped" | "inherit" | "null";
}

export interface TurnServer {
  /** `turn:USER:PASS@IP:PORT`, the form mailmeet's --turn takes. */
  url: string;
  server: string;
  user: string;
  password: string;
  realm: string;
}

export interface NatLab extends AsyncDisposable {
  /** Namespace prefix of this lab, `mmlab-<pid>-<n>`. */
  readonly id: string;
  /** Folder holding configs and daemon logs (removed at dispose unless MAILMEET_LAB_KEEP=1). */
  readonly dir: string;
  readonly namespaces: readonly string[];
  /** Two STUN addresses of one server (empty without STUN): compare mappings to spot a symmetric NAT. */
  readonly stunServers: readonly string[];
  readonly turn?: TurnServer;
  /** Milliseconds from natLab() to a ready lab. */
  readonly createdInMs: number;
  host(site: string, i?: number): LabHost;
  hosts(site: string): LabHost[];
  router(site: string): LabRouter;
  /** A cgnat site's ISP NAT. */
  isp(site: string): LabRouter;
  publicHost(name: string): LabHost;
  /** The STUN server's namespace (public, two addresses), for probes that play a remote sender. */
  readonly stunNs?: string;
  /** Runs `cmd` inside namespace `ns` (via `ip netns exec`), tracked and killed at dispose. */
  spawn(ns: string, cmd: string, args?: string[], opts?: SpawnOptions): Deno.ChildProcess;
  /** Runs `cmd` inside `ns` to completion; throws a LabError on a non-zero exit unless check: false. */
  exec(ns: string, cmd: string, args?: string[], opts?: RunOptions): Promise<RunResult>;
  /** The router's current UPnP / NAT-PMP / PCP mappings, read from miniupnpd's nftables chain. */
  portMappings(site: string): Promise<PortMapping[]>;
  /**
   * miniupnpd's leases (its lease file): each mapping's end and description, to check the lease
   * a client asked for. The nftables rules of portMappings() are what the router does.
   */
  leases(site: string): Promise<PortLease[]>;
  /** The router's ruleset as `nft list ruleset` prints it (for debugging a failing test). */
  ruleset(site: string): Promise<string>;
  /** A daemon's log: "coturn" or "miniupnpd-<site>". */
  log(name: string): Promise<string>;
}

// --- process-wide registry: signals and unload clean up every live lab ------------------------------

const live = new Set<Lab>();
let listening = false;

function emergencyCleanup(): void {
  for (const lab of live) lab.destroySync();
  live.clear();
}
const onSignal = (code: number) => () => {
  emergencyCleanup();
  Deno.exit(code);
};
const onSigint = onSignal(130);
const onSigterm = onSignal(143);
const onUnload = () => emergencyCleanup();

function register(lab: Lab): void {
  live.add(lab);
  if (listening) return;
  listening = true;
  Deno.addSignalListener("SIGINT", onSigint);
  Deno.addSignalListener("SIGTERM", onSigterm);
  globalThis.addEventListener("unload", onUnload);
}

function unregister(lab: Lab): void {
  live.delete(lab);
  if (!listening || live.size) return;
  listening = false;
  Deno.removeSignalListener("SIGINT", onSigint);
  Deno.removeSignalListener("SIGTERM", onSigterm);
  globalThis.removeEventListener("unload", onUnload);
}

// --- the lab ----------------------------------------------------------------------------------------

let labCounter = 0;

interface Tracked {
  child: Deno.ChildProcess;
  exited: boolean;
  /** Streams that are piped: only those exist on the child, and unread ones must be cancelled. */
  piped: ("stdout" | "stderr")[];
}

class Lab implements NatLab {
  readonly id: string;
  readonly namespaces: string[];
  stunServers: string[] = [];
  turn?: TurnServer;
  createdInMs = 0;
  #children = new Set<Tracked>();
  #disposed = false;
  #logs = new Map<string, string>();

  constructor(readonly plan: LabPlan, readonly dir: string) {
    this.id = plan.id;
    this.namespaces = plan.namespaces.map((n) => n.name);
  }

  get stunNs(): string | undefined {
    return this.plan.stun?.ns;
  }

  #site(name: string): SitePlan {
    const site = this.plan.sites.get(name);
    if (!site) throw new LabError(`The lab has no site "${name}".`, "unknown-name");
    return site;
  }

  host(site: string, i = 0): LabHost {
    const h = this.#site(site).hosts[i];
    if (!h) throw new LabError(`Site "${site}" has no host ${i}.`, "unknown-name");
    return h;
  }

  hosts(site: string): LabHost[] {
    return [...this.#site(site).hosts];
  }

  router(site: string): LabRouter {
    const r = this.#site(site).router;
    if (!r) {
      throw new LabError(`Site "${site}" has no router: its hosts are on the internet.`, "unknown-name");
    }
    return r;
  }

  isp(site: string): LabRouter {
    const r = this.#site(site).isp;
    if (!r) throw new LabError(`Site "${site}" is not behind carrier-grade NAT.`, "unknown-name");
    return r;
  }

  publicHost(name: string): LabHost {
    const h = this.plan.publicHosts.get(name);
    if (!h) throw new LabError(`The lab has no public host "${name}".`, "unknown-name");
    return h;
  }

  #checkNs(ns: string): void {
    if (!this.namespaces.includes(ns)) {
      throw new LabError(`"${ns}" is not a namespace of lab ${this.id}.`, "unknown-name");
    }
  }

  spawn(ns: string, cmd: string, args: string[] = [], opts: SpawnOptions = {}): Deno.ChildProcess {
    this.#checkNs(ns);
    if (this.#disposed) throw new LabError(`Lab ${this.id} is already torn down.`, "disposed");
    // `ip netns exec` execs the command itself: the child's pid is the command's.
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", ns, cmd, ...args],
      env: opts.env,
      cwd: opts.cwd,
      stdin: opts.stdin ?? "null",
      stdout: opts.stdout ?? "inherit",
      stderr: opts.stderr ?? "inherit",
    }).spawn();
    const piped = (["stdout", "stderr"] as const).filter((s) => opts[s] === "piped");
    const t: Tracked = { child, exited: false, piped };
    this.#children.add(t);
    child.status.then(() => (t.exited = true), () => (t.exited = true));
    return child;
  }

  exec(ns: string, cmd: string, args: string[] = [], opts: RunOptions = {}): Promise<RunResult> {
    this.#checkNs(ns);
    return netnsExec(ns, cmd, args, opts);
  }

  async ruleset(site: string): Promise<string> {
    return (await netnsExec(this.router(site).ns, "nft", ["list", "ruleset"])).stdout;
  }

  async portMappings(site: string): Promise<PortMapping[]> {
    const router = this.router(site);
    if (!this.#site(site).upnp) return [];
    const r = await netnsExec(router.ns, "nft", [
      "-j",
      "list",
      "chain",
      "inet",
      TABLE,
      UPNP_CHAINS.prerouting,
    ]);
    return parseUpnpChain(r.stdout);
  }

  async leases(site: string): Promise<PortLease[]> {
    const plan = this.#site(site);
    if (!plan.upnp) return [];
    const text = await Deno.readTextFile(this.#leaseFile(plan)).catch(() => "");
    return parseLeaseFile(text);
  }

  #leaseFile(site: SitePlan): string {
    return `${this.dir}/miniupnpd-${site.spec.name}.leases`;
  }

  async log(name: string): Promise<string> {
    const path = this.#logs.get(name);
    if (!path) throw new LabError(`The lab has no daemon log "${name}".`, "unknown-name");
    return await Deno.readTextFile(path).catch(() => "");
  }

  // --- building -------------------------------------------------------------------------------------

  async build(spec: LabSpec): Promise<void> {
    const plan = this.plan;
    await ipBatch(plan.namespaces.map((n) => `netns add ${n.name}`));
    // sysctls before links: new links take the namespace's IPv6 default (off unless asked).
    await Promise.all(plan.namespaces.map(async (ns) => {
      const settings = Object.entries(ns.sysctl).map(([k, v]) => `${k}=${v}`);
      if (settings.length) await netnsExec(ns.name, "sysctl", ["-q", "-w", ...settings]);
      if (ns.nft) await netnsExec(ns.name, "nft", ["-f", "-"], { stdin: ns.nft });
    }));
    await ipBatch(plan.links);
    await Promise.all(plan.namespaces.map((ns) => ipBatch(ns.ip, ns.name)));

    if (plan.stun) {
      const stun = plan.stun;
      this.stunServers = stun.ips.map((ip) => `${ip}:${stun.port}`);
      await this.#startCoturn(stun, !!spec.turn);
      if (spec.turn) {
        const server = `${stun.ips[0]}:${stun.port}`;
        this.turn = {
          url: `turn:${TURN_USER}:${TURN_PASSWORD}@${server}`,
          server,
          user: TURN_USER,
          password: TURN_PASSWORD,
          realm: TURN_REALM,
        };
      }
    }
    await Promise.all([...plan.sites.values()].filter((s) => s.upnp).map((s) => this.#startMiniupnpd(s)));
  }

  /** Spawns a daemon with its output appended to a log file in the lab folder. */
  #daemon(ns: string, name: string, cmd: string, args: string[]): Deno.ChildProcess {
    const logFile = `${this.dir}/${name}.log`;
    this.#logs.set(name, logFile);
    return this.spawn(ns, "sh", ["-c", 'exec "$0" "$@" >>"$NATLAB_LOG" 2>&1', cmd, ...args], {
      env: { NATLAB_LOG: logFile },
      stdout: "null",
      stderr: "null",
    });
  }

  /** Waits until the daemon's namespace has every socket in `want` open, or fails with its log. */
  async #listening(
    name: string,
    child: Deno.ChildProcess,
    want: { udp?: string[]; tcp?: string[] },
  ): Promise<void> {
    let exited = false;
    child.status.then(() => (exited = true), () => (exited = true));
    const deadline = Date.now() + DAEMON_START_TIMEOUT_MS;
    while (true) {
      const [udp, tcp] = await Promise.all([openSockets(child.pid, "udp"), openSockets(child.pid, "tcp")]);
      if ((want.udp ?? []).every((a) => udp.has(a)) && (want.tcp ?? []).every((a) => tcp.has(a))) return;
      if (exited || Date.now() > deadline) {
        const what = exited ? "exited" : `did not listen within ${DAEMON_START_TIMEOUT_MS} ms`;
        throw new LabError(`${name} ${what} in lab ${this.id}.`, "daemon-failed", {
          output: (await this.log(name)).slice(-3000),
        });
      }
      await new Promise((r) => setTimeout(r, DAEMON_POLL_MS));
    }
  }

  async #startCoturn(stun: NonNullable<LabPlan["stun"]>, turn: boolean): Promise<void> {
    const conf = `${this.dir}/turnserver.conf`;
    await Deno.writeTextFile(conf, coturnConfig({ ips: stun.ips, port: stun.port, turn, dir: this.dir }));
    const child = this.#daemon(stun.ns, "coturn", TURNSERVER, ["-c", conf]);
    // RFC 5780 needs both addresses on the main port and the alternate port (main + 1).
    const udp = stun.ips.flatMap((
      ip,
    ) => [procSocketAddress(ip, stun.port), procSocketAddress(ip, stun.port + 1)]);
    await this.#listening("coturn", child, {
      udp,
      tcp: turn ? [procSocketAddress(stun.ips[0], stun.port)] : [],
    });
  }

  async #startMiniupnpd(site: SitePlan): Promise<void> {
    const router = site.router!;
    const name = `miniupnpd-${site.spec.name}`;
    const conf = `${this.dir}/${name}.conf`;
    const behindIsp = site.spec.nat === "cgnat";
    await Deno.writeTextFile(
      conf,
      miniupnpdConfig({
        wanIf: router.wanIf,
        lanIf: router.lanIf,
        lanNet: `${LAN.net}.0/24`,
        uuid: crypto.randomUUID(),
        leaseFile: this.#leaseFile(site),
        stun: behindIsp || !this.plan.stun
          ? undefined
          : { host: this.plan.stun.ips[0], port: this.plan.stun.port },
      }),
    );
    const child = this.#daemon(router.ns, name, MINIUPNPD, [
      "-f",
      conf,
      "-d",
      "-P",
      `${this.dir}/${name}.pid`,
    ]);
    // NAT-PMP/PCP is the last socket miniupnpd opens, after its STUN self-test and HTTP listener.
    await this.#listening(name, child, { udp: [procSocketAddress(router.lanIp, NATPMP_PORT)] });
  }

  // --- teardown -------------------------------------------------------------------------------------

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      const children = [...this.#children];
      for (const t of children) {
        try {
          t.child.kill("SIGTERM");
        } catch {
          // Already exited.
        }
      }
      const all = Promise.allSettled(children.map((t) => t.child.status));
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([all, new Promise((r) => (timer = setTimeout(r, KILL_GRACE_MS)))]);
      clearTimeout(timer);
      for (const t of children) {
        if (t.exited) continue;
        try {
          t.child.kill("SIGKILL");
        } catch {
          // Exited meanwhile.
        }
      }
      await all;
      for (const t of children) {
        // Output nobody read would keep a resource open after the test.
        for (const s of t.piped) await cancelQuietly(t.child[s]);
      }
      await destroyNamespaces(this.namespaces);
    } finally {
      unregister(this);
      if (Deno.env.get("MAILMEET_LAB_KEEP") !== "1") {
        await Deno.remove(this.dir, { recursive: true }).catch(() => {});
      }
    }
  }

  /** Synchronous teardown for signal handlers and unload. */
  destroySync(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    destroyNamespacesSync(this.namespaces, [...this.#children].map((t) => t.child.pid));
  }
}

async function cancelQuietly(s: ReadableStream<Uint8Array>): Promise<void> {
  try {
    if (!s.locked) await s.cancel();
  } catch {
    // Already closed.
  }
}

/**
 * Builds a lab. Throws LabError("unsupported") when not root or without `ip`/`nft` (tests check
 * labSkipReason() first and skip).
 */
export async function natLab(spec: LabSpec): Promise<NatLab> {
  const started = performance.now();
  const reason = await labSkipReason();
  if (reason) throw new LabError(reason, "unsupported");
  await sweepStale(TMP);
  const id = `mmlab-${Deno.pid}-${labCounter++}`;
  const plan = planLab(spec, id);
  if (plan.stun || [...plan.sites.values()].some((s) => s.upnp)) await ensureTools();
  const dir = await Deno.makeTempDir({ dir: TMP, prefix: `${id}-` });
  const lab = new Lab(plan, dir);
  register(lab);
  try {
    await lab.build(spec);
  } catch (e) {
    await lab[Symbol.asyncDispose]().catch(() => {});
    throw e;
  }
  lab.createdInMs = Math.round(performance.now() - started);
  return lab;
}

export { run };
