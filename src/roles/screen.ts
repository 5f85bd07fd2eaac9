/**
 * The checks every mail a host acts on must pass, in one place (host and representative alike):
 * it opens with the network key, it is not too old by its Date header (【0041】) nor by its sealed
 * time, not from the future, and its nonce was not used in another mail (replay).
 */
import { ProtocolError } from "../protocol/errors.ts";
import { b64u } from "../protocol/bytes.ts";
import type { Failure, Leave, Request, Sync } from "../protocol/messages.ts";
import { freshness } from "../table/policy.ts";
import type { NonceLedger } from "./host_storage.ts";
import type { InboundMail } from "./inbox.ts";

export interface ScreenSettings {
  maxAgeMs: number;
  skewMs: number;
}

export type Screened =
  | {
    ok: true;
    message: Request | Failure | Sync | Leave;
    /** The nonce as the table keys it: settle() it once the message's work is done. */
    nonce: string;
    /** Seen in this mail before a restart: "retry" (not done yet) or "answered" (done; just delete it). */
    seen: "new" | "retry" | "answered";
  }
  | { ok: false; reason: string };

export function screen(m: InboundMail, table: NonceLedger, s: ScreenSettings, now: number): Screened {
  if (m.message instanceof ProtocolError) return { ok: false, reason: m.message.message };
  if (m.mail.date && m.mail.date.getTime() < now - s.maxAgeMs) {
    return { ok: false, reason: `its Date (${m.mail.date.toISOString()}) is older than --max-age` };
  }
  const msg = m.message;
  if (msg.kind === "reply") return { ok: false, reason: "it is a reply, and this host asked nothing" };
  if (msg.kind === "intro") return { ok: false, reason: "it is an introduction, which only peers take" };
  const fresh = freshness(msg.time, now, s.maxAgeMs, s.skewMs);
  if (fresh !== "ok") {
    return {
      ok: false,
      reason: fresh === "old" ? "it was sealed longer ago than --max-age" : "it is dated in the future",
    };
  }
  const nonce = b64u(msg.nonce);
  const verdict = table.checkNonce(nonce, m.id, msg.time, now - s.maxAgeMs - s.skewMs);
  if (verdict === "replay") return { ok: false, reason: "its nonce was already used: a replayed request" };
  return { ok: true, message: msg, nonce, seen: verdict };
}
