/**
 * One attempt to open a UDP path between two members through their NATs (hole punching), as a
 * small state machine: the caller delivers the attempt's packets and calls `tick()` on a timer; the
 * attempt says what to send. No timers or sockets of its own, so tests drive it with a fake clock.
 *
 * Both sides send probes from their sockets to every address they know for the other; a NAT lets
 * an answer in once its own side has sent towards that address (RFC 4787 §5, "filtering"). A probe
 * that arrives is answered with an ack from the same socket, carrying the address the probe came
 * from; an ack proves the path both ways and tells us our own public address on it.
 *
 * Against a NAT that maps every destination to a new port ("symmetric", RFC 4787 §4.1) the other
 * side's address is not known in advance: the symmetric side probes from many sockets (each opens a
 * mapping towards us) while we probe random ports of its public address — with 256 sockets and
 * 2048 guesses, one meets one with probability ≈ 1 − e^(−256·2048/64512) > 99.9%; we allow up to
 * 8192 guesses (the first hit comes after ~250 on average, a fifth of a second).
 */
import { b64u, equalBytes, type Random, systemRandom } from "../protocol/bytes.ts";
import { type CandidateKind, formatHostPort } from "../protocol/candidate.ts";
import { encodePunch, PUNCH_SESSION_BYTES, type PunchPacket } from "../protocol/punch.ts";
import type { HostPort } from "./stun.ts";

export interface PunchSocket {
  readonly port: number;
  send(data: Uint8Array, host: string, port: number): void;
}

export interface PunchTarget extends HostPort {
  kind: CandidateKind;
}

export interface PunchOptions {
  /** Seals the packets (NetworkKey.punchKey). */
  key: Uint8Array;
  /** Our link public key and theirs: every packet names both. */
  localKey: Uint8Array;
  remoteKey: Uint8Array;
  /** Where we probe from: one socket, or many when our own NAT is symmetric. */
  sockets: readonly PunchSocket[];
  /** Every address we know for the other side. */
  targets: readonly PunchTarget[];
  /** Public addresses of a symmetric NAT on the other side: probe random ports there. */
  guessHosts?: readonly string[];
  /** Random guesses in all at most (spread over ticks). */
  maxGuesses?: number;
  random?: Random;
  clock?: () => number;
}

/** A path that answered both ways. */
export interface PunchedPath {
  socket: PunchSocket;
  /** Where the other side's socket is reachable from `socket`. */
  remote: HostPort;
  /** Our own address as the other side saw it (its ack says so). */
  seenAs?: HostPort;
  /** The other side's session for its socket on this path (names that socket in signalling). */
  remoteSession: Uint8Array;
  /** What kind of candidate answered; "punched" when it was a guess or an address we were not told. */
  kind: CandidateKind | "punched";
}

export const TICK_MS = 50;
/** Probes to known targets at these ticks (0, 100, 200, 400 ms …), then every REPEAT_TICKS. */
const EARLY_TICKS = new Set([0, 2, 4, 8, 16]);
const REPEAT_TICKS = 10;
/** Random guesses per tick while guessing (1280 packets/s at a 50 ms tick, a few hundred KiB/s). */
const GUESSES_PER_TICK = 64;
export const DEFAULT_MAX_GUESSES = 8192;
/** The lowest port a NAT hands out for mappings (ports below are the router's own services). */
const GUESS_LOW_PORT = 1024;

/** "host:port" of a HostPort, bracketed for IPv6. */
export function formatHp(a: HostPort): string {
  return formatHostPort(a.host, a.port);
}

export function parseHp(text: unknown): HostPort | undefined {
  if (typeof text !== "string") return undefined;
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(text) ?? /^([^:]+):(\d+)$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[2]);
  return Number.isInteger(port) && port > 0 && port < 65536 ? { host: m[1], port } : undefined;
}

export class PunchAttempt {
  readonly #o: PunchOptions;
  readonly #random: Random;
  readonly #clock: () => number;
  /** One session id per local socket: an ack names the socket its probe left from. */
  readonly #sessions: Uint8Array[];
  #tick = 0;
  #guesses = 0;
  #done = false;
  #stopped = false;
  readonly #confirmed = Promise.withResolvers<PunchedPath>();
  /** Addresses that sent us a probe, per socket index: probed back at once (a peer-reflexive target). */
  readonly #learned = new Map<string, { socket: number; target: HostPort }>();

  constructor(opts: PunchOptions) {
    this.#o = opts;
    this.#random = opts.random ?? systemRandom;
    this.#clock = opts.clock ?? Date.now;
    this.#sessions = opts.sockets.map(() => this.#random(PUNCH_SESSION_BYTES));
    this.#confirmed.promise.catch(() => {});
  }

  /** Resolves with the first path that answered both ways. */
  get confirmed(): Promise<PunchedPath> {
    return this.#confirmed.promise;
  }

  get done(): boolean {
    return this.#done;
  }

  get guesses(): number {
    return this.#guesses;
  }

  sessionOf(socket: PunchSocket): Uint8Array | undefined {
    const i = this.#o.sockets.indexOf(socket);
    return i < 0 ? undefined : this.#sessions[i];
  }

  /** Sends what is due now; call every TICK_MS until `done`. */
  tick(): void {
    if (this.#done) return;
    const t = this.#tick++;
    if (EARLY_TICKS.has(t) || t % REPEAT_TICKS === 0) {
      this.#o.sockets.forEach((_, i) => {
        for (const target of this.#o.targets) this.#probe(i, target);
      });
      for (const { socket, target } of this.#learned.values()) this.#probe(socket, target);
    }
    const hosts = this.#o.guessHosts ?? [];
    const max = this.#o.maxGuesses ?? DEFAULT_MAX_GUESSES;
    if (hosts.length > 0 && this.#guesses < max) {
      // After the first burst keep guessing slowly: the other side may start late (mail skew).
      const n = Math.min(
        this.#guesses < max / 2 ? GUESSES_PER_TICK : GUESSES_PER_TICK / 8,
        max - this.#guesses,
      );
      const ports = this.#random(2 * n);
      for (let k = 0; k < n; k++) {
        const port = GUESS_LOW_PORT + ((ports[2 * k] << 8 | ports[2 * k + 1]) % (65536 - GUESS_LOW_PORT));
        const host = hosts[k % hosts.length];
        this.#probe(k % this.#o.sockets.length, { host, port });
      }
      this.#guesses += n;
    }
  }

  /**
   * Takes a packet that opened with the punch key and is meant for this pair (the caller checked
   * `from`/`to` and freshness). Probes are answered; an ack that echoes our session confirms.
   */
  receive(p: PunchPacket, from: HostPort, socket: PunchSocket): void {
    if (this.#stopped) return;
    const i = this.#o.sockets.indexOf(socket);
    if (i < 0) return;
    if (p.type === "probe") {
      // Answered even once we are done: the other side may still be waiting for its ack.
      socket.send(this.#packet("ack", i, { e: b64u(p.session), s: formatHp(from) }), from.host, from.port);
      if (this.#done) return;
      // Probe back to where it came from: through a symmetric NAT that address was not guessable.
      const id = `${i} ${formatHp(from)}`;
      if (!this.#learned.has(id) && this.#learned.size < 64) {
        this.#learned.set(id, { socket: i, target: from });
        this.#probe(i, from);
      }
      return;
    }
    if (this.#done || p.type !== "ack" || p.body.e !== b64u(this.#sessions[i])) return;
    const known = this.#o.targets.find((t) => t.host === from.host && t.port === from.port);
    this.#done = true;
    this.#confirmed.resolve({
      socket,
      remote: { host: from.host, port: from.port },
      seenAs: parseHp(p.body.s),
      remoteSession: p.session,
      kind: known?.kind === "public" ? "punched" : known?.kind ?? "punched",
    });
  }

  /** Stops sending and answering; `confirmed` rejects if it had not resolved. */
  stop(reason = "the punch attempt was stopped"): void {
    if (!this.#done) this.#confirmed.reject(new Error(reason));
    this.#done = true;
    this.#stopped = true;
  }

  /** One sealed probe per socket and tick, reused for every target of that tick. */
  #probes = new Map<number, Uint8Array>();
  #probesTick = -1;

  #probe(socket: number, target: HostPort): void {
    if (this.#probesTick !== this.#tick) {
      this.#probes.clear();
      this.#probesTick = this.#tick;
    }
    let packet = this.#probes.get(socket);
    if (!packet) {
      packet = this.#packet("probe", socket, {});
      this.#probes.set(socket, packet);
    }
    this.#o.sockets[socket].send(packet, target.host, target.port);
  }

  #packet(type: "probe" | "ack", socket: number, body: Record<string, unknown>): Uint8Array {
    return encodePunch(this.#o.key, {
      type,
      from: this.#o.localKey,
      to: this.#o.remoteKey,
      session: this.#sessions[socket],
      time: this.#clock(),
      body,
    }, this.#random);
  }
}

/** Whether `p` is for the pair (local, remote). */
export function isForPair(p: PunchPacket, localKey: Uint8Array, remoteKey: Uint8Array): boolean {
  return equalBytes(p.to, localKey) && equalBytes(p.from, remoteKey);
}
