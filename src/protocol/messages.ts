/**
 * The messages mailmeet mails, as small encode/decode pairs. Inside the seal they are compact JSON
 * with byte fields in base64url; every field is checked on the way in, so a message that opens but
 * is malformed is a ProtocolError ("invalid"), never a crash further up.
 */
import { b64u, fromB64u, fromUtf8, utf8 } from "./bytes.ts";
import {
  type Candidate,
  decodeCandidates,
  decodeMapping,
  encodeCandidates,
  isValidHost,
  type MappingBehaviour,
} from "./candidate.ts";
import { ProtocolError } from "./errors.ts";
import { isMailAddress } from "../mail/address.ts";

export { isValidHost };

/** Kind numbers are bound into the seal's associated data; never reuse one. */
export const KIND = {
  request: 1,
  reply: 2,
  failure: 3,
  sync: 4,
  // 5–15 reserved for more host-to-host kinds.
  intro: 16,
  leave: 17,
} as const;
export type KindName = keyof typeof KIND;

export const SESSION_BYTES = 16;
export const NONCE_BYTES = 16;
export const LINK_KEY_BYTES = 32;
export const MAX_PEERS_IN_REPLY = 64;
/** Entries one sync message carries at most (the most recent). */
export const MAX_SYNC_ENTRIES = 256;
/** Host-to-host hops a sync may travel; with the visited list it bounds the mail a chain can cause. */
export const MAX_HOPS = 4;
const MAX_USER_CHARS = 64;
const MAX_MAIL_CHARS = 254;

export interface Endpoint {
  host: string;
  port: number;
}

/**
 * How to reach a node beyond the patent's one address (【0024】 assumes a forwarded port): every
 * candidate address, how its NAT maps UDP, and whether it relays for the group. `host`/`port`
 * stay beside it as the primary TCP address, so an older mailmeet can still dial.
 */
export interface Reachability {
  candidates: Candidate[];
  mapping: MappingBehaviour;
  /** It forwards links between members who cannot reach each other directly. */
  relay: boolean;
  /** "relay": a dedicated host that only relays — not a person to chat with or dial first. */
  role: "peer" | "relay";
}

/** The reachability of a node known by one TCP address only (what an older mailmeet sends). */
export function reachAt(host: string, port: number): Reachability {
  return {
    candidates: [{ kind: "advertised", transport: "tcp", host, port }],
    mapping: "unknown",
    relay: false,
    role: "peer",
  };
}

/** Peer → host: "here I am" (patent 【0025】), plus what makes it unspoofable. */
export interface Request extends Endpoint, Reachability {
  kind: "request";
  user: string;
  /** Random per request; the reply must echo it (【0066】). */
  session: Uint8Array;
  /** The peer's link public key (X25519) for this run. */
  linkKey: Uint8Array;
  /** Milliseconds since the epoch when sent. */
  time: number;
  nonce: Uint8Array;
  /** Where the reply goes. Sealed, so the address never shows in a body in clear. */
  replyTo: string;
  /**
   * The peer is already linked to the group and asks only to stay in the table: the host sends
   * no introductions for it (they cost mail, and links already carry the news).
   */
  quiet: boolean;
  /** `doctor` asking whether the host answers: answered, never stored or introduced. */
  probe: boolean;
}

export interface PeerEntry extends Endpoint, Reachability {
  user: string;
  linkKey: Uint8Array;
  /** When the host stored this peer (its request time), ms since the epoch. */
  seen: number;
  /** Someone reported they could not reach it (【0047】). */
  flagged: boolean;
}

/** Host → peer: recent others, never the requester, never an e-mail address (【0045】). */
export interface Reply {
  kind: "reply";
  session: Uint8Array;
  time: number;
  peers: PeerEntry[];
}

/** Peer → host: "I could not reach this one" (【0034】), naming it by user id (【0047】). */
export interface Failure {
  kind: "failure";
  user: string;
  target: string;
  /**
   * The link key the unreachable peer was listed with: the host flags the row only if it still
   * holds that key (the peer may have started again meanwhile, alive under a new key).
   */
  targetKey?: Uint8Array;
  time: number;
  nonce: Uint8Array;
}

/**
 * Host → host (patent 【0059】【0060】【0065】): recent table entries, never an e-mail address of a
 * peer. Sent to hosts learned from a request's recipient list, to upstream hosts (chaining), and
 * as a bootstrap answer. `want` asks the receiver to answer with its own entries.
 */
export interface Sync {
  kind: "sync";
  /** The sending host's mailbox: where to answer. */
  host: string;
  entries: PeerEntry[];
  want: boolean;
  /** Hosts this knowledge has passed through, the sender included; never sent back to them. */
  visited: string[];
  time: number;
  nonce: Uint8Array;
}

/**
 * Host → an earlier peer it just listed to a newcomer: "this one is coming, dial it too". Mail is
 * the only channel before a link exists, so both sides learn of each other at about the same time
 * and can punch through their NATs at once (design: "Introductions").
 */
export interface Intro {
  kind: "intro";
  /**
   * The newcomers, as the host stored them (1 to MAX_INTRO_PEERS): a host answering a burst of
   * requests introduces each earlier peer to all the newcomers of the burst in one mail, not one
   * mail per newcomer (free accounts send a few hundred mails a day).
   */
  peers: PeerEntry[];
  /** When the host introduced the first of them. */
  time: number;
  nonce: Uint8Array;
  /** How long (ms from `time`) the newcomers keep trying; after that, a dial is pointless. */
  window: number;
}

/** Peer → host: "I am going": the host forgets the row at once instead of after --ttl. */
export interface Leave {
  kind: "leave";
  user: string;
  /** The leaving run's link key: only the row of that run is forgotten. */
  linkKey: Uint8Array;
  time: number;
  nonce: Uint8Array;
}

export type Message = Request | Reply | Failure | Sync | Intro | Leave;

/** The longest punch window an introduction may ask for. */
export const MAX_INTRO_WINDOW_MS = 10 * 60_000;
/** Newcomers one introduction may carry (a burst's worth; the mail stays a few kilobytes). */
export const MAX_INTRO_PEERS = 16;

export function encodeMessage(msg: Message): { kind: number; bytes: Uint8Array } {
  let wire: Record<string, unknown>;
  switch (msg.kind) {
    case "request":
      wire = {
        u: msg.user,
        h: msg.host,
        p: msg.port,
        s: b64u(msg.session),
        k: b64u(msg.linkKey),
        t: msg.time,
        n: b64u(msg.nonce),
        r: msg.replyTo,
        ...reachabilityWire(msg),
        ...(msg.quiet ? { x: 1 } : {}),
        ...(msg.probe ? { d: 1 } : {}),
      };
      break;
    case "reply":
      wire = { s: b64u(msg.session), t: msg.time, peers: msg.peers.map(entryWire) };
      break;
    case "failure":
      wire = {
        u: msg.user,
        x: msg.target,
        t: msg.time,
        n: b64u(msg.nonce),
        ...(msg.targetKey ? { k: b64u(msg.targetKey) } : {}),
      };
      break;
    case "sync":
      wire = {
        o: msg.host,
        peers: msg.entries.map(entryWire),
        w: msg.want,
        v: msg.visited,
        t: msg.time,
        n: b64u(msg.nonce),
      };
      break;
    case "intro":
      // `e` is the first newcomer, as versions before coalescing wrote it (they read only that
      // one); `x` the others of the burst.
      wire = {
        e: entryWire(msg.peers[0]),
        ...(msg.peers.length > 1 ? { x: msg.peers.slice(1).map(entryWire) } : {}),
        t: msg.time,
        n: b64u(msg.nonce),
        w: msg.window,
      };
      break;
    case "leave":
      wire = { u: msg.user, k: b64u(msg.linkKey), t: msg.time, n: b64u(msg.nonce) };
      break;
  }
  return { kind: KIND[msg.kind], bytes: utf8(JSON.stringify(wire)) };
}

export function decodeMessage(kind: number, bytes: Uint8Array): Message {
  let wire: unknown;
  try {
    wire = JSON.parse(fromUtf8(bytes));
  } catch (err) {
    throw new ProtocolError("The sealed content is not valid JSON.", "invalid", { cause: err });
  }
  if (typeof wire !== "object" || wire === null || Array.isArray(wire)) {
    throw new ProtocolError("The sealed content is not an object.", "invalid");
  }
  const w = wire as Record<string, unknown>;
  switch (kind) {
    case KIND.request:
      return {
        kind: "request",
        user: userId(w.u, "user"),
        ...endpoint(w.h, w.p),
        session: bytesField(w.s, "session", SESSION_BYTES),
        linkKey: bytesField(w.k, "link key", LINK_KEY_BYTES),
        time: timeField(w.t),
        nonce: bytesField(w.n, "nonce", NONCE_BYTES),
        replyTo: mailAddress(w.r),
        ...reachability(w),
        quiet: w.x === 1,
        probe: w.d === 1,
      };
    case KIND.reply:
      return {
        kind: "reply",
        session: bytesField(w.s, "session", SESSION_BYTES),
        time: timeField(w.t),
        peers: entryList(w.peers, MAX_PEERS_IN_REPLY),
      };
    case KIND.failure:
      return {
        kind: "failure",
        user: userId(w.u, "user"),
        target: userId(w.x, "target"),
        time: timeField(w.t),
        nonce: bytesField(w.n, "nonce", NONCE_BYTES),
        ...(w.k === undefined ? {} : { targetKey: bytesField(w.k, "target link key", LINK_KEY_BYTES) }),
      };
    case KIND.sync: {
      if (typeof w.w !== "boolean") throw new ProtocolError("A sync lacks its want flag.", "invalid");
      if (!Array.isArray(w.v) || w.v.length > MAX_HOPS + 1) {
        throw new ProtocolError(`A sync must name at most ${MAX_HOPS + 1} visited hosts.`, "invalid");
      }
      return {
        kind: "sync",
        host: mailAddress(w.o),
        entries: entryList(w.peers, MAX_SYNC_ENTRIES),
        want: w.w,
        visited: w.v.map(mailAddress),
        time: timeField(w.t),
        nonce: bytesField(w.n, "nonce", NONCE_BYTES),
      };
    }
    case KIND.intro: {
      if (!Number.isInteger(w.w) || (w.w as number) < 0 || (w.w as number) > MAX_INTRO_WINDOW_MS) {
        throw new ProtocolError("An introduction's punch window is missing or out of range.", "invalid");
      }
      return {
        kind: "intro",
        peers: [entry(w.e), ...(w.x === undefined ? [] : entryList(w.x, MAX_INTRO_PEERS - 1))],
        time: timeField(w.t),
        nonce: bytesField(w.n, "nonce", NONCE_BYTES),
        window: w.w as number,
      };
    }
    case KIND.leave:
      return {
        kind: "leave",
        user: userId(w.u, "user"),
        linkKey: bytesField(w.k, "link key", LINK_KEY_BYTES),
        time: timeField(w.t),
        nonce: bytesField(w.n, "nonce", NONCE_BYTES),
      };
    default:
      throw new ProtocolError(
        `Message kind ${kind} is not one this mailmeet knows; update mailmeet.`,
        "unsupported",
      );
  }
}

function entryWire(e: PeerEntry): Record<string, unknown> {
  return {
    u: e.user,
    h: e.host,
    p: e.port,
    k: b64u(e.linkKey),
    t: e.seen,
    f: e.flagged,
    ...reachabilityWire(e),
  };
}

/** Only what differs from what an older mailmeet assumed (one TCP address, no relay) goes on the wire. */
function reachabilityWire(r: Reachability & Endpoint): Record<string, unknown> {
  const legacy = r.candidates.length === 1 && r.candidates[0].kind === "advertised" &&
    r.candidates[0].transport === "tcp" && r.candidates[0].host === r.host && r.candidates[0].port === r.port;
  return {
    ...(legacy ? {} : { c: encodeCandidates(r.candidates) }),
    ...(r.mapping === "unknown" ? {} : { m: r.mapping }),
    ...(r.relay ? { y: 1 } : {}),
    ...(r.role === "relay" ? { z: "relay" } : {}),
  };
}

/** Messages of the previous version carry no candidates: their one address is the TCP candidate. */
function reachability(w: Record<string, unknown>): Reachability {
  const { host, port } = endpoint(w.h, w.p);
  if (w.y !== undefined && w.y !== 1) throw new ProtocolError("A relay flag must be 1.", "invalid");
  if (w.z !== undefined && w.z !== "relay") {
    throw new ProtocolError("A member's role is not one this mailmeet knows.", "invalid");
  }
  return {
    candidates: w.c === undefined
      ? [{ kind: "advertised", transport: "tcp", host, port }]
      : decodeCandidates(w.c),
    mapping: decodeMapping(w.m),
    relay: w.y === 1,
    role: w.z === "relay" ? "relay" : "peer",
  };
}

function entry(raw: unknown): PeerEntry {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ProtocolError("A peer entry is not an object.", "invalid");
  }
  const e = raw as Record<string, unknown>;
  if (typeof e.f !== "boolean") throw new ProtocolError("A peer entry lacks its flag.", "invalid");
  return {
    user: userId(e.u, "peer user"),
    ...endpoint(e.h, e.p),
    linkKey: bytesField(e.k, "peer link key", LINK_KEY_BYTES),
    seen: timeField(e.t),
    flagged: e.f,
    ...reachability(e),
  };
}

function entryList(v: unknown, max: number): PeerEntry[] {
  if (!Array.isArray(v) || v.length > max) {
    throw new ProtocolError(`A message must list at most ${max} peers.`, "invalid");
  }
  return v.map(entry);
}

/** User ids: 1–64 printable characters, no spaces at the ends, no control characters. */
export function isValidUserId(u: unknown): u is string {
  return typeof u === "string" && u.length >= 1 && [...u].length <= MAX_USER_CHARS && u.trim() === u &&
    !/[\p{Cc}\p{Cf}]/u.test(u);
}

function userId(v: unknown, what: string): string {
  if (!isValidUserId(v)) {
    throw new ProtocolError(`The ${what} id is missing or not a valid user id.`, "invalid");
  }
  return v;
}

function endpoint(h: unknown, p: unknown): Endpoint {
  if (!isValidHost(h)) {
    throw new ProtocolError("The address is missing or not an IP address or host name.", "invalid");
  }
  if (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535) {
    throw new ProtocolError("The port is missing or out of range.", "invalid");
  }
  return { host: h, port: p as number };
}

function bytesField(v: unknown, what: string, length: number): Uint8Array {
  const b = typeof v === "string" ? fromB64u(v) : undefined;
  if (!b || b.length !== length) {
    throw new ProtocolError(`The ${what} is missing or not ${length} bytes.`, "invalid");
  }
  return b;
}

function timeField(v: unknown): number {
  // Between 2020 and 2200: anything else is a broken clock or a forgery.
  if (!Number.isSafeInteger(v) || (v as number) < 1_577_836_800_000 || (v as number) > 7_258_118_400_000) {
    throw new ProtocolError("The time is missing or not a plausible timestamp.", "invalid");
  }
  return v as number;
}

function mailAddress(v: unknown): string {
  if (typeof v !== "string" || v.length > MAX_MAIL_CHARS || !isMailAddress(v)) {
    throw new ProtocolError("The reply address is missing or not an e-mail address.", "invalid");
  }
  return v.toLowerCase();
}
