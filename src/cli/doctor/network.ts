/**
 * doctor's look at this machine from the network: the --listen port accepts connections, and the
 * address others would dial (--advertise, or the one detected) is one they can reach.
 */
import { detectAdvertiseHost } from "../../net/address.ts";
import { listenLinks } from "../../net/link.ts";
import { formatHostPort } from "../../protocol/candidate.ts";
import type { NetworkKey } from "../../protocol/keys.ts";
import { generateKeyPair } from "../../protocol/noise.ts";
import type { PeerDialer } from "../../roles/peer.ts";
import { parseHostPort, str } from "../context.ts";
import { listenError, sentenceFor } from "../errors.ts";
import type { Resolved } from "../options.ts";
import { type CheckResult, STEP_TIMEOUT_MS } from "./check.ts";
import { listenFix } from "./fixes.ts";

export interface Listening {
  dialer: PeerDialer;
  port: number;
  advertise: { host: string; port: number };
  close(): Promise<void>;
}

export async function checkListen(
  r: Resolved,
  key: NetworkKey | undefined,
  user: string,
  report: (c: CheckResult) => void,
): Promise<Listening | undefined> {
  let listen: { host: string; port: number };
  try {
    listen = parseHostPort(str(r, "listen"), "listen");
  } catch (err) {
    report({
      check: "listen",
      status: "fail",
      title: `listen: ${sentenceFor(err)}`,
      fix: "Use --listen IP:PORT.",
    });
    return undefined;
  }
  // Without the group key the listener still listens (it just cannot complete a handshake).
  const staticKey = generateKeyPair();
  const stop = new AbortController();
  let listener;
  try {
    listener = listenLinks({
      hostname: listen.host,
      port: listen.port,
      staticKey,
      networkKey: key?.secret ?? new Uint8Array(32),
      localInfo: { user, v: 1 },
      signal: stop.signal,
      onError: () => {},
      onLink: (link) => void link.close(),
    });
  } catch (err) {
    report({
      check: "listen",
      status: "fail",
      title: `listen: ${sentenceFor(listenError(formatHostPort(listen.host, listen.port), err))}`,
      fix: listenFix(err),
    });
    report({ check: "address", status: "skip", title: "address: not checked" });
    return undefined;
  }
  const port = listener.addr.port;
  const close = async () => {
    stop.abort();
    await listener.close();
  };
  const local = listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
  try {
    const conn = await Deno.connect({ hostname: local, port, signal: AbortSignal.timeout(STEP_TIMEOUT_MS) });
    conn.close();
    report({
      check: "listen",
      status: "ok",
      title: listen.port === 0
        ? `listen: port ${port} (a free one, new each run) accepts connections on this machine`
        : `listen: ${formatHostPort(listen.host, port)} accepts connections on this machine`,
      fix: listen.port === 0
        ? "Peers behind a router reach you only on a fixed, forwarded port: e.g. --listen 0.0.0.0:47000."
        : undefined,
    });
  } catch (err) {
    report({
      check: "listen",
      status: "fail",
      title: `listen: listening on ${formatHostPort(listen.host, port)} but a local connection failed: ${
        (err as Error).message
      }`,
      fix: "A local firewall may block the port; allow it, or pick another --listen port.",
    });
    await close();
    report({ check: "address", status: "skip", title: "address: not checked" });
    return undefined;
  }

  let advertise: { host: string; port: number };
  const adv = str(r, "advertise");
  if (adv) {
    try {
      advertise = parseHostPort(adv, "advertise");
    } catch (err) {
      report({
        check: "address",
        status: "fail",
        title: `address: ${sentenceFor(err)}`,
        fix: "Use --advertise IP:PORT.",
      });
      await close();
      return undefined;
    }
    report({
      check: "address",
      status: "ok",
      title: `address: others dial ${formatHostPort(advertise.host, advertise.port)} (--advertise)`,
    });
  } else {
    const host = detectAdvertiseHost(listen.host);
    if (!host) {
      report({
        check: "address",
        status: "fail",
        title: "address: this machine has no network address others could dial",
        fix: "Connect to a network, or pass --advertise IP:PORT (your LAN or public address).",
      });
      await close();
      return undefined;
    }
    advertise = { host, port };
    const kind = addressKind(host);
    report({
      check: "address",
      status: kind === "public" ? "ok" : "warn",
      title: `address: others will dial ${formatHostPort(host, port)} (${
        kind === "public"
          ? "a public address"
          : kind === "loopback"
          ? "this machine only"
          : "a private address: only machines on the same network can reach it"
      })`,
      fix: kind === "public"
        ? undefined
        : kind === "loopback"
        ? "Listen on 0.0.0.0 (the default) so others can reach you."
        : "Fine for a LAN party; across the internet, forward a fixed --listen port on your router and pass --advertise PUBLIC-IP:PORT.",
    });
  }
  // Doctor's probes never dial: they only want to know that a host answers.
  const dialer: PeerDialer = {
    publicKey: staticKey.publicKey,
    reach: () => ({
      host: advertise.host,
      port: advertise.port,
      candidates: [{ kind: "advertised", transport: "tcp", host: advertise.host, port: advertise.port }],
      mapping: "unknown",
      relay: false,
      role: "peer",
    }),
    dial: () => Promise.reject(new Error("doctor does not dial")),
  };
  return { dialer, port, advertise, close };
}

export function addressKind(host: string): "public" | "private" | "loopback" {
  if (/^127\./.test(host) || host === "::1") return "loopback";
  if (
    /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.|169\.254\.|100\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])\.)/.test(
      host,
    )
  ) {
    return "private";
  }
  if (/^(fc|fd|fe[89ab])/i.test(host)) return "private";
  return "public";
}
