/**
 * What the roles report. The CLI turns these into readable lines or, with --json, one object per
 * line. Field names are part of the CLI contract: extend, never rename. No event carries a key or
 * a password; only host-side events may carry an e-mail address, and only `table` prints them.
 */

export type NodeEvent =
  // peer
  | { event: "listening"; address: string; port: number; advertise: string }
  | { event: "request_sent"; via: string[]; session: string }
  | { event: "reply"; from: string; peers: number; session: string }
  | { event: "reply_ignored"; reason: string }
  | {
    event: "waiting";
    reason: string;
    /** What for: a host's reply, or a peer to link with. */
    for?: "reply" | "peer";
    /** Seconds waited so far (the periodic "still waiting" lines). */
    since?: number;
  }
  /** Mail we sent came back (RFC 3464): `final` when it failed for good, else it is only delayed. */
  | { event: "bounced"; address: string; reason: string; status?: string; final: boolean }
  /** Marker mail that does not open: its sender and why (most often another network key), never its content. */
  | { event: "mail_unreadable"; from: string; reason: string; code: string }
  | { event: "dial"; peer: string; address: string; candidates?: number }
  | { event: "dial_failed"; peer: string; address: string; reason: string }
  | { event: "failure_sent"; peer: string; via: string }
  | {
    event: "connected";
    peer: string;
    address: string;
    direction: "out" | "in";
    /** `direct` or `relay`, the transport and the kind of address that worked (CLI contract). */
    path: "direct" | "relay";
    transport: "tcp" | "quic";
    kind: string;
    rtt_ms: number;
  }
  | { event: "introduced"; peer: string; via: string }
  | {
    event: "link_replaced";
    peer: string;
    path: "direct" | "relay";
    transport: "tcp" | "quic";
    kind: string;
  }
  | { event: "candidates"; candidates: string[]; mapping: string; public?: string; port_mapping?: string }
  | { event: "punch"; peer: string; stage: string; detail?: string }
  | { event: "relayed"; from: string; to: string; outcome: string; reason?: string }
  | { event: "disconnected"; peer: string; address: string; reason?: string }
  /** A link's smoothed round trip moved noticeably (src/node/rtt.ts). */
  | { event: "rtt"; peer: string; rtt_ms: number }
  | { event: "link_refused"; address: string; reason: string }
  // host
  | { event: "host_request"; peer: string; address: string; outcome: "stored" | "older" | "retry" }
  | { event: "host_reply"; peer: string; peers: number; /** wake-up to reply accepted by SMTP */ ms: number }
  | { event: "host_failure"; reporter: string; peer: string; flagged: boolean }
  | { event: "host_intro"; peer: string; newcomer: string }
  | { event: "host_leave"; peer: string; forgotten: boolean }
  | { event: "host_dropped"; reason: string; detail: string }
  | { event: "promoted"; reason: string }
  /** A dedicated host started: which mailbox it answers, where it reads, where its table is. */
  | { event: "hosting"; address: string; inbox: string; table: string }
  // both: each mail this node sends (counted by the benchmarks; shown with --verbose)
  | {
    event: "mail_sent";
    kind: "request" | "reply" | "failure" | "sync" | "forward" | "intro" | "leave";
    recipients: number;
  }
  /** The mail budget holds back a kind of mail (sync, intro, reply, own), said once until it flows again. */
  | { event: "budget_held"; kind: string; message: string }
  | { event: "error"; message: string; code?: string }
  | { event: "info"; message: string };

export type EventSink = (e: NodeEvent) => void;

export const silent: EventSink = () => {};

/** Hex for ids that appear in events (session ids are random, not secret). */
export function shortHex(bytes: Uint8Array, n = 8): string {
  return [...bytes.subarray(0, n)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
