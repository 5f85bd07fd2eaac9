/**
 * SASL messages, which IMAP (RFC 3501 §6.2.2), POP3 (RFC 5034) and SMTP (RFC 4954) carry alike,
 * base64 encoded: PLAIN for passwords, and for bearer-token login OAUTHBEARER (RFC 7628) and
 * Google's and Microsoft's older XOAUTH2. Bytes in, text out: no sockets, no clock.
 */

const te = new TextEncoder();
const td = new TextDecoder();

export type BearerMechanism = "OAUTHBEARER" | "XOAUTH2";

function base64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** RFC 4616 PLAIN: base64 of "\0user\0password" (authorization identity empty = same as user). */
export function saslPlain(user: string, password: string): string {
  return base64(te.encode(`\0${user}\0${password}`));
}

/**
 * RFC 5801 §4 saslname: "," and "=" inside the authorization identity are written =2C and =3D,
 * so the gs2-header's own commas stay unambiguous.
 */
export function saslName(name: string): string {
  return name.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/**
 * RFC 7628 §3.1 initial client response:
 *   gs2-header kvsep *kvpair kvsep, with kvsep = %x01,
 * "n,a=USER," (no channel binding, authorization identity), then host=, port= (§3.1: "SHOULD"
 * be sent) and auth=Bearer TOKEN (RFC 6750 §2.1).
 */
export function oauthBearerResponse(user: string, token: string, host?: string, port?: number): string {
  const pairs = [
    ...(host ? [`host=${host}`] : []),
    ...(port ? [`port=${port}`] : []),
    `auth=Bearer ${token}`,
  ];
  return base64(te.encode(`n,a=${saslName(user)},\x01${pairs.join("\x01")}\x01\x01`));
}

/** XOAUTH2 (Google's and Microsoft's developer docs): "user=" USER ^A "auth=Bearer " TOKEN ^A ^A. */
export function xoauth2Response(user: string, token: string): string {
  return base64(te.encode(`user=${user}\x01auth=Bearer ${token}\x01\x01`));
}

/** The initial response for either mechanism. */
export function bearerResponse(
  mechanism: BearerMechanism,
  user: string,
  token: string,
  host?: string,
  port?: number,
): string {
  return mechanism === "OAUTHBEARER"
    ? oauthBearerResponse(user, token, host, port)
    : xoauth2Response(user, token);
}

/**
 * What the client sends after a failure challenge, so the server can finish with its NO / -ERR / 535:
 * RFC 7628 §3.2.3 a single %x01 for OAUTHBEARER; for XOAUTH2 an empty response.
 */
export function bearerAbort(mechanism: BearerMechanism): string {
  return mechanism === "OAUTHBEARER" ? base64(new Uint8Array([1])) : "";
}

/** The error a server sends as a challenge when it refuses a token (RFC 7628 §3.2.2). */
export interface BearerFailure {
  /** HTTP-style status, "401" for an invalid or expired token (RFC 6750 §3.1). */
  readonly status?: string;
  readonly scope?: string;
  readonly schemes?: string;
}

/** Reads a failure challenge (base64 JSON); undefined when it is not one. */
export function parseBearerFailure(challenge: string): BearerFailure | undefined {
  let json: unknown;
  try {
    const bin = atob(challenge.trim());
    json = JSON.parse(td.decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return undefined;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return undefined;
  const o = json as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === "string" ? v : typeof v === "number" ? String(v) : undefined);
  const out: { status?: string; scope?: string; schemes?: string } = {};
  if (text(o.status) !== undefined) out.status = text(o.status);
  if (text(o.scope) !== undefined) out.scope = text(o.scope);
  if (text(o.schemes) !== undefined) out.schemes = text(o.schemes);
  return out;
}

/**
 * Which bearer mechanism to use among those the server offers: OAUTHBEARER, the standard one, when
 * offered (Gmail), else XOAUTH2 (Outlook.com offers only that); undefined when neither is.
 */
export function pickBearerMechanism(offered: ReadonlySet<string>): BearerMechanism | undefined {
  if (offered.has("OAUTHBEARER")) return "OAUTHBEARER";
  if (offered.has("XOAUTH2")) return "XOAUTH2";
  return undefined;
}
