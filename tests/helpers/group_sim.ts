/**
 * A day of a group in virtual time: the real Host and Peer roles, a real peer table, the real mail
 * budget, and fakes for everything else — mail is a queue delivered a little later, a dial reaches
 * a member exactly when it is online, and peer exchange is modelled as what it does (members
 * linked to one member of a group are soon linked to all of it). No real time passes: the clock is
 * a number the simulation moves.
 */
import { MailBudget, MemoryLedger } from "../../src/mail/budget.ts";
import { budgetedSender } from "../../src/mail/budget_sender.ts";
import type { OutgoingMail, Sender, SentInfo } from "../../src/mail/smtp.ts";
import { openText } from "../../src/protocol/envelope.ts";
import { networkKeyFromSecret } from "../../src/protocol/keys.ts";
import { type PeerEntry, reachAt } from "../../src/protocol/messages.ts";
import type { NodeEvent } from "../../src/roles/events.ts";
import { DEFAULT_SKEW_MS, Host } from "../../src/roles/host.ts";
import type { InboundMail } from "../../src/roles/inbox.ts";
import { type LinkedPeer, type LinkSet, Peer } from "../../src/roles/peer.ts";
import { DEFAULT_POLICY } from "../../src/table/policy.ts";
import { PeerTable } from "../../src/table/table.ts";

const key = networkKeyFromSecret(new Uint8Array(32).fill(9));
const HOST = "host@sim.test";
const MARKER = "mailmeet rendezvous";
const MINUTE = 60_000;

/** One stay of one member: online from `start` to `end` (ms from the start of the simulation). */
export interface Session {
  user: string;
  start: number;
  end: number;
}

export interface SimOptions {
  sessions: Session[];
  durationMs: number;
  /** The host account's --mail-budget (every member's too). */
  budget: number;
  /** --reannounce. */
  reannounceMs?: number;
  /** How long a mail takes from sender to the recipient's node. */
  mailDelayMs?: number;
  /** The simulation's tick: mail is read and links are checked this often. */
  stepMs?: number;
  /** Members coming back dial the ones they were linked to before mailing (Peer.comeBack). */
  comeBack?: boolean;
  /** A member online this long must be linked with every other such member. */
  graceMs?: number;
}

export interface SimResult {
  /** Mails (recipients) each account sent over the whole simulation. */
  sent: Map<string, number>;
  /** Recipients by sender ("host", "member") and message kind. */
  byKind: Map<string, number>;
  /** The most the host sent in any 24 hours (what its provider counts). */
  hostPeak24h: number;
  /** Checks (every tick) at which some settled online member was not linked to another one (the first 100). */
  apart: { at: number; user: string; with: string }[];
  /** How many requests the host had to leave for later because of its budget. */
  held: number;
  sessions: number;
}

interface Member {
  user: string;
  address: string;
  online: boolean;
  since: number;
  links: Set<string>;
  peer?: Peer;
  remembered: PeerEntry[];
  budget: MailBudget;
  sender: Sender;
  nextReannounce: number;
}

interface Queued {
  at: number;
  to: string;
  mail: InboundMail;
}

export async function simulateGroup(o: SimOptions): Promise<SimResult> {
  const start = Date.UTC(2026, 10, 27, 0);
  let now = start;
  const clock = () => now;
  const reannounceMs = o.reannounceMs ?? 30 * MINUTE;
  const delay = o.mailDelayMs ?? 15_000;
  const step = o.stepMs ?? 15_000;
  const grace = o.graceMs ?? 10 * MINUTE;
  /** Each mailbox's mail, by address. */
  const boxes = new Map<string, Queued[]>();
  const box = (address: string) => boxes.get(address) ?? boxes.set(address, []).get(address)!;
  const sent = new Map<string, number>();
  const byKind = new Map<string, number>();
  const hostLog: number[] = [];
  let id = 0;
  let held = 0;

  const post = (account: string): Sender => ({
    label: `sim:${account}`,
    send(mail: OutgoingMail): Promise<SentInfo> {
      sent.set(account, (sent.get(account) ?? 0) + mail.to.length);
      const kind = `${account === HOST ? "host" : "member"} ${
        (openText(key, mail.text) as { kind: string }).kind
      }`;
      byKind.set(kind, (byKind.get(kind) ?? 0) + mail.to.length);
      if (account === HOST) { for (const _ of mail.to) hostLog.push(now); }
      for (const to of mail.to) {
        box(to).push({
          at: now + delay,
          to,
          mail: {
            id: `m${++id}`,
            mail: {
              subject: mail.subject,
              date: new Date(now),
              recipients: [...mail.to],
              text: mail.text,
              from: account,
            },
            message: openText(key, mail.text),
            wokeAt: 0,
          },
        });
      }
      return Promise.resolve({ messageId: `<${id}@sim>`, response: "250 ok" });
    },
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
  const budgetOf = (account: string) =>
    new MailBudget({ account, limit: o.budget, ledger: new MemoryLedger(), clock });

  const dir = await Deno.makeTempDir({ prefix: "mailmeet-sim-" });
  const table = new PeerTable(`${dir}/table.db`, DEFAULT_POLICY);
  const events: NodeEvent[] = [];
  const hostBudget = budgetOf(HOST);
  const host = new Host(
    { address: HOST, marker: MARKER, maxAgeMs: 12 * 3600_000, skewMs: DEFAULT_SKEW_MS },
    {
      key,
      table,
      sender: budgetedSender(post(HOST), hostBudget),
      events: (e) => {
        if (e.event === "budget_held" && e.kind === "reply") held++;
        events.push(e);
      },
      budget: hostBudget,
      clock,
    },
  );

  const members = new Map<string, Member>();
  for (const s of o.sessions) {
    if (members.has(s.user)) continue;
    const address = `${s.user}@sim.test`;
    const budget = budgetOf(address);
    members.set(s.user, {
      user: s.user,
      address,
      online: false,
      since: 0,
      links: new Set(),
      remembered: [],
      budget,
      sender: budgetedSender(post(address), budget),
      nextReannounce: Infinity,
    });
  }
  const entryOf = (m: Member): PeerEntry => ({
    user: m.user,
    host: "192.0.2.1",
    port: 4000,
    linkKey: new Uint8Array(32).fill(1),
    seen: now,
    flagged: false,
    ...reachAt("192.0.2.1", 4000),
  });
  const link = (a: Member, b: Member) => {
    // Peer exchange: both sides soon link with everyone the other is linked to.
    const mesh = new Set([a.user, b.user, ...a.links, ...b.links]);
    for (const u of mesh) {
      const m = members.get(u)!;
      for (const v of mesh) if (v !== u) m.links.add(v);
    }
  };
  const linkSet = (m: Member): LinkSet => ({
    adopt: () => true,
    has: (u) => m.links.has(u),
    get size() {
      return m.links.size;
    },
  });
  const fakeLink = (user: string): LinkedPeer => ({
    user,
    address: "192.0.2.1:4000",
    direction: "out",
    route: { path: "direct", transport: "tcp", kind: "lan", rttMs: 1 },
    closed: new Promise(() => {}),
    close: () => Promise.resolve(),
  });

  const join = async (m: Member) => {
    m.online = true;
    m.since = now;
    const peer = new Peer(
      {
        address: m.address,
        user: m.user,
        vias: [HOST],
        marker: MARKER,
        friends: new Set(),
        blocked: new Set(),
        dialWindowMs: 45_000,
        maxLinks: 8,
        introDelayMs: 0,
      },
      {
        key,
        sender: m.sender,
        dialer: {
          publicKey: new Uint8Array(32).fill(1),
          reach: () => ({ host: "192.0.2.1", port: 4000, ...reachAt("192.0.2.1", 4000) }),
          dial: (entry) => {
            const other = members.get(entry.user);
            if (!other?.online || other === m) return Promise.reject(new Error(`${entry.user} is offline`));
            link(m, other);
            return Promise.resolve(fakeLink(entry.user));
          },
        },
        links: linkSet(m),
        events: () => {},
        clock,
      },
    );
    m.peer = peer;
    // A node reads what waited in its box before it asks (src/cli/node.ts).
    await readBox(m);
    // Linked again or not, the host hears of this run (its new key and address); linked, quietly.
    if (o.comeBack) await peer.comeBack(m.remembered, 45_000);
    await peer.announce().catch(() => {});
    m.nextReannounce = now + reannounceMs;
  };
  const leave = async (m: Member) => {
    await m.peer!.leave();
    await m.peer!.close();
    m.remembered = [...m.links].map((u) => entryOf(members.get(u)!));
    m.online = false;
    m.peer = undefined;
    for (const u of m.links) members.get(u)!.links.delete(m.user);
    m.links.clear();
    m.nextReannounce = Infinity;
  };
  const readBox = async (m: Member) => {
    const mine = box(m.address);
    for (const q of mine.filter((q) => q.at <= now)) {
      mine.splice(mine.indexOf(q), 1);
      const d = m.peer!.wants(q.mail) ? m.peer!.handle(q.mail) : "delete";
      if (d === "keep" || d === "later") mine.push({ ...q, at: now + 60 * MINUTE });
      await m.peer!.dialing;
    }
  };

  const apart: SimResult["apart"] = [];
  const events0 = o.sessions.flatMap((s) => [
    { at: s.start, kind: "join" as const, user: s.user },
    { at: s.end, kind: "leave" as const, user: s.user },
  ]).sort((a, b) => a.at - b.at || (a.kind === "leave" ? -1 : 1));
  try {
    for (let t = 0; t <= o.durationMs; t += step) {
      now = start + t;
      while (events0.length > 0 && events0[0].at <= t) {
        const e = events0.shift()!;
        const m = members.get(e.user)!;
        if (e.kind === "join" && !m.online) await join(m);
        if (e.kind === "leave" && m.online) await leave(m);
      }
      // The host's box, in arrival order; what it leaves for later waits for the next pass.
      const hostBox = box(HOST);
      for (const q of hostBox.filter((q) => q.at <= now)) {
        const d = await host.handle(q.mail);
        // What waits is looked at again on a later pass (the inbox loop's retry), not every tick.
        if (d === "later") q.at = now + 10 * MINUTE;
        else hostBox.splice(hostBox.indexOf(q), 1);
      }
      // The pass ends: the introductions it gathered go (as InboxReader's afterPass does).
      await host.flushIntroductions();
      for (const m of members.values()) if (m.online) await readBox(m);
      for (const m of members.values()) {
        if (!m.online || now < m.nextReannounce) continue;
        m.nextReannounce = now + reannounceMs;
        await m.peer!.reannounce().catch(() => {});
        await m.peer!.dialing;
      }
      // Everyone settled must be linked with everyone else settled (one mesh).
      const settled = [...members.values()].filter((m) => m.online && now - m.since >= grace);
      for (const m of settled) {
        const miss = settled.find((x) => x !== m && !m.links.has(x.user));
        if (miss && apart.length < 100) apart.push({ at: t, user: m.user, with: miss.user });
      }
    }
  } finally {
    for (const m of members.values()) await m.peer?.close();
    table.close();
    await Deno.remove(dir, { recursive: true });
  }
  let hostPeak24h = 0;
  for (let i = 0, j = 0; j < hostLog.length; j++) {
    while (hostLog[j] - hostLog[i] >= 24 * 3600_000) i++;
    hostPeak24h = Math.max(hostPeak24h, j - i + 1);
  }
  return { sent, byKind, hostPeak24h, apart, held, sessions: o.sessions.length };
}

/** A small deterministic random source (mulberry32), so a schedule is the same every run. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 8 friends meeting for an evening: they arrive over half an hour, one router restarts, all leave at 4 h. */
export function eveningSessions(): Session[] {
  const arrive = [0, 3, 5, 10, 12, 20, 25, 30].map((m) => m * MINUTE);
  const end = 4 * 60 * MINUTE;
  const s: Session[] = arrive.map((at, i) => ({ user: `friend${i}`, start: at, end }));
  // friend3's router restarts after two hours: gone for five minutes.
  s[3] = { user: "friend3", start: arrive[3], end: 120 * MINUTE };
  s.push({ user: "friend3", start: 125 * MINUTE, end });
  return s;
}

/**
 * An all-day group: `steady` members online all day (arriving in the first hour), and every hour
 * `churn` visits from a pool of occasional members, each starting at a random minute of the hour
 * and staying 15 to 45 minutes.
 */
export function allDaySessions(steady = 20, churn = 10, pool = 30, seed = 15): Session[] {
  const rnd = seeded(seed);
  const day = 24 * 60 * MINUTE;
  const s: Session[] = [];
  for (let i = 0; i < steady; i++) {
    s.push({ user: `steady${i}`, start: Math.floor(rnd() * 60) * MINUTE, end: day });
  }
  const busyUntil = new Map<string, number>();
  for (let h = 0; h < 24; h++) {
    for (let k = 0; k < churn; k++) {
      const start = (h * 60 + Math.floor(rnd() * 60)) * MINUTE;
      const end = Math.min(day, start + (15 + Math.floor(rnd() * 31)) * MINUTE);
      // The next occasional member not online at that time.
      let user = "";
      for (let tries = 0; tries < pool * 2; tries++) {
        const u = `visitor${Math.floor(rnd() * pool)}`;
        if ((busyUntil.get(u) ?? -1) < start) {
          user = u;
          break;
        }
      }
      if (!user) continue;
      busyUntil.set(user, end);
      s.push({ user, start, end });
    }
  }
  return s;
}
