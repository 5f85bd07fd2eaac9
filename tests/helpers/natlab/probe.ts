/**
 * Drives tests/fixtures/natlab_probe.ts (and other JSON-lines fixtures) inside a lab namespace:
 * `await using p = await udpProbe(lab, lab.host("a").ns);`.
 */
import type { NatLab } from "./lab.ts";

const PROBE = new URL("../../fixtures/natlab_probe.ts", import.meta.url).pathname;
const PORTMAP = new URL("../../fixtures/natlab_portmap.ts", import.meta.url).pathname;
const CONFIG = new URL("../../../deno.json", import.meta.url).pathname;
export const PROBE_START_TIMEOUT_MS = 20_000;
/** How long a test waits for a packet it expects (generous: the lab never loses packets). */
export const EXPECT_TIMEOUT_MS = 5_000;
/**
 * How long a test waits, after a control packet on the same path came back, before it calls a
 * packet that did not come "dropped". The control proves the sender ran; this only covers
 * reordering between the server's threads.
 */
export const SETTLE_MS = 200;

/** The address part of "IP:PORT", "[IPv6]:PORT" or a bare address. */
export function hostOf(address: string): string {
  const v6 = /^\[(.*)\]:\d+$/.exec(address);
  if (v6) return v6[1];
  return address.includes(".") && address.includes(":")
    ? address.slice(0, address.lastIndexOf(":"))
    : address;
}

export interface ProbeEvent {
  event: string;
  [k: string]: unknown;
}

/** A process speaking JSON lines: commands to stdin, events from stdout. */
export class LineProcess implements AsyncDisposable {
  readonly events: ProbeEvent[] = [];
  readonly stderr: string[] = [];
  #waiters = new Set<() => void>();
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #done: Promise<void>;
  #closed = false;

  constructor(readonly name: string, readonly child: Deno.ChildProcess) {
    this.#writer = child.stdin.getWriter();
    this.#done = Promise.all([
      this.#read(child.stdout, (line) => {
        try {
          this.events.push(JSON.parse(line));
        } catch {
          this.stderr.push(line);
        }
      }),
      this.#read(child.stderr, (line) => this.stderr.push(line)),
    ]).then(() => {
      this.#closed = true;
      this.#wake();
    });
  }

  async #read(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
    let buf = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buf += text;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        onLine(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      this.#wake();
    }
    if (buf) onLine(buf);
  }

  #wake() {
    for (const w of this.#waiters) w();
  }

  async send(cmd: Record<string, unknown>): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(JSON.stringify(cmd) + "\n"));
  }

  /** The first event (already seen or to come) matching `pred`; undefined after timeoutMs. */
  wait(pred: (e: ProbeEvent) => boolean, timeoutMs = EXPECT_TIMEOUT_MS): Promise<ProbeEvent | undefined> {
    const found = this.events.find(pred);
    if (found || this.#closed) return Promise.resolve(found);
    return new Promise((resolve) => {
      const check = () => {
        const e = this.events.find(pred);
        if (e || this.#closed) finish(e);
      };
      const finish = (e: ProbeEvent | undefined) => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(e);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      this.#waiters.add(check);
    });
  }

  /** Like wait(), but throws (with what the process printed) when nothing matched. */
  async expect(
    pred: (e: ProbeEvent) => boolean,
    what: string,
    timeoutMs = EXPECT_TIMEOUT_MS,
  ): Promise<ProbeEvent> {
    const e = await this.wait(pred, timeoutMs);
    if (!e) {
      throw new Error(
        `${this.name}: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events)}; ` +
          `stderr: ${this.stderr.join("\n").slice(-2000)}`,
      );
    }
    return e;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await this.#done;
    await this.child.status;
  }
}

function spawnDeno(lab: NatLab, ns: string, permissions: string[], script: string, args: string[]) {
  return lab.spawn(ns, Deno.execPath(), [
    "run",
    "--quiet",
    "--no-prompt",
    "--config",
    CONFIG,
    ...permissions,
    script,
    ...args,
  ], {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  });
}

const PROBE_PERMISSIONS = ["--unstable-net", "--allow-net"];

function spawnProbe(lab: NatLab, ns: string, name: string, args: string[]): LineProcess {
  return new LineProcess(name, spawnDeno(lab, ns, PROBE_PERMISSIONS, PROBE, args));
}

export interface StunResult {
  /** The address:port the server saw (the NAT's mapping). */
  mapped: string;
  from: string;
  origin?: string;
  other?: string;
}

/** A UDP socket inside a namespace. */
export class UdpProbe extends LineProcess {
  local = "";
  #tags = 0;
  #sent = 0;

  /** Sends a Binding request; resolves with the answer, or undefined when none came in timeoutMs. */
  async stun(server: string, opts: { change?: "ip" | "port" | "both"; timeoutMs?: number } = {}) {
    const tag = `s${this.#tags++}`;
    await this.send({ op: "stun", to: server, tag, ...(opts.change ? { change: opts.change } : {}) });
    const e = await this.wait((e) => e.event === "stun" && e.tag === tag, opts.timeoutMs);
    return e as (ProbeEvent & StunResult) | undefined;
  }

  /**
   * The RFC 5780 §4.4 filtering test for one CHANGE-REQUEST: true when the answer from the other
   * address/port got through the NAT. A plain Binding sent right after is the control: once it is
   * answered, the changed answer has been sent too, so waiting SETTLE_MS more is enough.
   */
  async changedAnswerArrives(server: string, change: "ip" | "port" | "both"): Promise<boolean> {
    const tag = `s${this.#tags++}`;
    await this.send({ op: "stun", to: server, tag, change });
    const control = await this.stun(server);
    if (!control) {
      throw new Error(`${this.name}: the STUN server ${server} did not answer the control request`);
    }
    const changed = await this.wait((e) => e.event === "stun" && e.tag === tag, SETTLE_MS);
    return changed !== undefined;
  }

  /** Sends one datagram; resolves once the probe's send() returned. */
  async datagram(to: string, text: string): Promise<void> {
    const seq = this.#sent++;
    await this.send({ op: "send", to, text, seq });
    await this.expect((e) => e.event === "sent" && e.seq === seq, `send of "${text}"`);
  }

  /** The first datagram whose text starts with `prefix` (and, if given, from `from`'s host). */
  received(prefix: string, opts: { from?: string; timeoutMs?: number } = {}) {
    return this.wait(
      (e) =>
        e.event === "recv" && String(e.text).startsWith(prefix) &&
        (!opts.from || hostOf(String(e.from)) === hostOf(opts.from)),
      opts.timeoutMs,
    );
  }

  /** Starts punching towards `to` (bounded: count packets, intervalMs apart); see punched(). */
  punch(to: string, opts: { text?: string; count?: number; intervalMs?: number } = {}): Promise<void> {
    return this.send({
      op: "punch",
      to,
      text: opts.text ?? "punch",
      count: opts.count ?? 40,
      intervalMs: opts.intervalMs ?? 50,
    });
  }

  /** Resolves when the punch towards `to` ended: true when the peer was heard. */
  async punched(to: string, timeoutMs = 30_000): Promise<boolean> {
    const e = await this.expect((e) => e.event === "punch_done" && e.to === to, "end of punching", timeoutMs);
    return e.heard === true;
  }
}

/** Starts a UDP probe bound to `bind` (default any address, any port) inside `ns`. */
export async function udpProbe(
  lab: NatLab,
  ns: string,
  opts: { bind?: string; echo?: boolean; name?: string } = {},
): Promise<UdpProbe> {
  const args = ["udp", "--bind", opts.bind ?? "0.0.0.0:0", ...(opts.echo ? ["--echo"] : [])];
  const child = spawnDeno(lab, ns, PROBE_PERMISSIONS, PROBE, args);
  const probe = new UdpProbe(opts.name ?? `udp probe in ${ns}`, child);
  const ready = await probe.wait((e) => e.event === "ready", PROBE_START_TIMEOUT_MS);
  if (!ready) {
    await probe[Symbol.asyncDispose]();
    throw new Error(`${probe.name} did not start: ${probe.stderr.join("\n").slice(-2000)}`);
  }
  probe.local = String(ready.local);
  return probe;
}

/** A TCP listener inside `ns` that greets and closes every connection ("accepted" events). */
export async function tcpListener(lab: NatLab, ns: string, bind: string): Promise<LineProcess> {
  const p = spawnProbe(lab, ns, `tcp listener in ${ns}`, ["tcp-listen", "--bind", bind]);
  await p.expect((e) => e.event === "ready", "listener start", PROBE_START_TIMEOUT_MS);
  return p;
}

export interface TcpAttempt {
  connected: boolean;
  /** The listener's greeting ("hello from IP:PORT"), when connected. */
  greeting?: string;
  local?: string;
  error?: string;
}

/** One TCP connection attempt from `ns` (bounded by timeoutMs). */
export async function tcpConnect(
  lab: NatLab,
  ns: string,
  to: string,
  opts: { localPort?: number; timeoutMs?: number } = {},
): Promise<TcpAttempt> {
  const args = ["tcp-connect", "--to", to, "--timeout-ms", String(opts.timeoutMs ?? 2000)];
  if (opts.localPort) args.push("--local-port", String(opts.localPort));
  await using p = spawnProbe(lab, ns, `tcp connect from ${ns}`, args);
  const e = await p.expect(
    (e) => e.event === "connected" || e.event === "connect_failed",
    "connection result",
    PROBE_START_TIMEOUT_MS + (opts.timeoutMs ?? 2000),
  );
  return e.event === "connected"
    ? { connected: true, greeting: String(e.greeting), local: String(e.local) }
    : { connected: false, error: String(e.error) };
}

/** A client of the router's port mapping (NAT-PMP or UPnP-IGD) inside `ns`, by nat-port-mapper. */
export class PortMapper extends LineProcess {
  #ids = 0;

  async #call(cmd: Record<string, unknown>): Promise<{ ok: boolean; value?: unknown; error?: string }> {
    const id = this.#ids++;
    await this.send({ id, ...cmd });
    const e = await this.expect((e) => e.event === "result" && e.id === id, `answer to ${cmd.op}`, 20_000);
    return { ok: e.ok === true, value: e.value, error: e.error as string | undefined };
  }

  /** The gateway's external address, or the error it answered. */
  external(): Promise<{ ok: boolean; value?: unknown; error?: string }> {
    return this.#call({ op: "external" });
  }

  map(port: number, host: string, protocol: "tcp" | "udp") {
    return this.#call({ op: "map", port, host, protocol });
  }

  unmap(port: number, protocol: "tcp" | "udp") {
    return this.#call({ op: "unmap", port, protocol });
  }
}

/** Starts a port mapping client in `ns`: NAT-PMP towards `gateway`, or UPnP-IGD found by SSDP. */
export function portMapper(lab: NatLab, ns: string, protocol: "pmp" | "upnp", gateway?: string): PortMapper {
  const args = protocol === "pmp" ? ["pmp", gateway ?? ""] : ["upnp"];
  // nat-port-mapper reads the interfaces (sys) and its logger's env.
  const permissions = ["--allow-net", "--allow-sys", "--allow-env", "--allow-read"];
  return new PortMapper(`${protocol} client in ${ns}`, spawnDeno(lab, ns, permissions, PORTMAP, args));
}
