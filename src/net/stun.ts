/**
 * STUN (RFC 8489, formerly 5389) Binding requests sent from our own UDP sockets, so the public
 * address a server reports is the one that socket's NAT mapping uses. The message encoding is
 * @msimerson/stun's; the socket, retransmission and matching of answers are ours, because the
 * same socket also carries punch packets.
 *
 * Two servers at different addresses tell the NAT's mapping behaviour (RFC 4787 §4.1, RFC 5780
 * §4.3): the same public port towards both means endpoint-independent mapping ("cone"), different
 * ports mean the NAT picks a new one per destination ("symmetric").
 */
import { lookup } from "node:dns/promises";
import type Stun from "@msimerson/stun";
import type { MappingBehaviour } from "../protocol/candidate.ts";
import { isIPv4, isIPv6 } from "../protocol/candidate.ts";
import type { Datagram } from "./udp.ts";

export interface HostPort {
  host: string;
  port: number;
}

/** Well-run public STUN servers of two operators (two addresses, so symmetric NATs show). */
export const DEFAULT_STUN_SERVERS = ["stun.l.google.com:19302", "stun.cloudflare.com:3478"];
/** Retransmissions at 0, 250 and 750 ms (RFC 8489 §6.2.1 allows a shorter RTO than 500 ms for known-good paths). */
const RETRANSMIT_MS = [0, 250, 750];
export const STUN_TIMEOUT_MS = 1500;
const STUN_COOKIE = 0x2112a442;

type StunModule = typeof Stun;
/**
 * The encoder, loaded by the first Binding request: evaluating it and its dependencies was ~10% of
 * every command's start-up, and most commands (apps attached to a node, --help) never ask STUN.
 */
let stunModule: Promise<StunModule> | undefined;
/** Set once loaded: an answer can only match a request, and a request loaded it. */
let stun: StunModule | undefined;
function loadStun(): Promise<StunModule> {
  return stunModule ??= import("@msimerson/stun").then((m) => stun = m.default as StunModule);
}

/** A STUN message: the two top bits clear and the magic cookie at offset 4 (RFC 8489 §5). */
export function isStun(data: Uint8Array): boolean {
  return data.length >= 20 && (data[0] & 0xc0) === 0 &&
    new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(4) === STUN_COOKIE;
}

/** "host:port" into parts; a missing port means 3478 (RFC 8489 §9). */
export function parseStunServer(text: string): HostPort {
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  const port = m?.[2] ? Number(m[2]) : 3478;
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`"${text}" is not a STUN server as HOST:PORT.`);
  }
  return { host: m[1], port };
}

/** Resolves names to IPv4 addresses; a server whose name does not resolve is left out. */
export async function resolveStunServers(list: readonly HostPort[]): Promise<HostPort[]> {
  const out = await Promise.all(list.map(async (s) => {
    if (isIPv4(s.host) || isIPv6(s.host)) return s;
    try {
      const { address } = await lookup(s.host, { family: 4 });
      return { host: address, port: s.port };
    } catch {
      return undefined;
    }
  }));
  return out.filter((s): s is HostPort => s !== undefined);
}

export function mappingBehaviour(answers: readonly (HostPort | undefined)[]): MappingBehaviour {
  const seen = answers.filter((a): a is HostPort => a !== undefined);
  if (seen.length < 2) return "unknown";
  return seen.every((a) => a.host === seen[0].host && a.port === seen[0].port) ? "eim" : "symmetric";
}

interface Pending {
  resolve: (a: HostPort) => void;
}

/** Binding requests over a socket the caller owns; the caller hands every STUN datagram to `handle`. */
export class StunClient {
  readonly #pending = new Map<string, Pending>();

  constructor(readonly send: (data: Uint8Array, host: string, port: number) => void) {}

  /** Takes an answer; false when it matches no request of ours. */
  handle(d: Datagram): boolean {
    if (!isStun(d.data) || !stun || this.#pending.size === 0) return false;
    let res;
    try {
      res = stun.decode(Buffer.from(d.data));
    } catch {
      return false;
    }
    const id = Buffer.from(res.transactionId).toString("hex");
    const pending = this.#pending.get(id);
    if (!pending) return false;
    const addr = res.getXorAddress?.() ?? res.getAddress?.();
    if (!addr || typeof addr.address !== "string" || typeof addr.port !== "number") return false;
    this.#pending.delete(id);
    const host = addr.address.startsWith("::ffff:") ? addr.address.slice(7) : addr.address;
    pending.resolve({ host, port: addr.port });
    return true;
  }

  /** Our public address as `server` sees it; undefined when it does not answer in time. */
  async binding(
    server: HostPort,
    timeoutMs = STUN_TIMEOUT_MS,
    signal?: AbortSignal,
  ): Promise<HostPort | undefined> {
    const stun = await loadStun();
    const msg = stun.createMessage(stun.constants.STUN_BINDING_REQUEST);
    const id = Buffer.from(msg.transactionId).toString("hex");
    const bytes = new Uint8Array(stun.encode(msg));
    const answer = Promise.withResolvers<HostPort | undefined>();
    this.#pending.set(id, { resolve: answer.resolve });
    const timers = RETRANSMIT_MS.filter((t) => t < timeoutMs).map((t) =>
      setTimeout(() => this.send(bytes, server.host, server.port), t)
    );
    timers.push(setTimeout(() => answer.resolve(undefined), timeoutMs));
    const onAbort = () => answer.resolve(undefined);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await answer.promise;
    } finally {
      for (const t of timers) clearTimeout(t);
      this.#pending.delete(id);
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Asks every server at once: the answers in order (undefined where none came). */
  probe(
    servers: readonly HostPort[],
    timeoutMs = STUN_TIMEOUT_MS,
    signal?: AbortSignal,
  ): Promise<(HostPort | undefined)[]> {
    return Promise.all(servers.map((s) => this.binding(s, timeoutMs, signal)));
  }
}
