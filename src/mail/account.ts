/** Mail account URLs: smtp://, smtps://, imap://, imaps://, pop3://, pop3s://, maildir:///path. */
import { MailError } from "./errors.ts";

export type Scheme = "smtp" | "smtps" | "imap" | "imaps" | "pop3" | "pop3s" | "maildir";
/** implicit: TLS from the first byte; starttls: upgrade required before login; none: clear text, only when the URL says so. */
export type TlsMode = "implicit" | "starttls" | "none";
/** password: the URL's password (PLAIN, LOGIN, USER/PASS); oauth2: a bearer token (`?auth=oauth2`). */
export type AuthMode = "password" | "oauth2";

export interface Account {
  readonly scheme: Scheme;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** Never log this; use `redact()` for anything printed. */
  readonly password: string;
  /** IMAP mailbox name (default INBOX), or the spool folder for maildir. */
  readonly path: string;
  readonly tls: TlsMode;
  readonly auth: AuthMode;
  /** Query parameters not interpreted here (poll=, etc.). */
  readonly params: URLSearchParams;
}

const DEFAULT_PORTS: Record<Exclude<Scheme, "maildir">, number> = {
  smtp: 587,
  smtps: 465,
  imap: 143,
  imaps: 993,
  pop3: 110,
  pop3s: 995,
};

const SCHEMES = new Set<string>(["smtp", "smtps", "imap", "imaps", "pop3", "pop3s", "maildir"]);

export function parseAccount(text: string): Account {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new MailError(
      `"${
        redactText(text)
      }" is not a mail URL; expected e.g. imaps://user:pass@imap.example.org/INBOX or maildir:///path/spool.`,
      "config",
    );
  }
  const scheme = url.protocol.replace(/:$/, "");
  if (!SCHEMES.has(scheme)) {
    throw new MailError(
      `Unknown mail URL scheme "${scheme}:" in "${
        redact(url)
      }"; use smtp, smtps, imap, imaps, pop3, pop3s or maildir.`,
      "config",
    );
  }
  const params = url.searchParams;
  if (scheme === "maildir") {
    const path = decodeURIComponent(url.pathname);
    if (!path || path === "/") {
      throw new MailError(
        `The maildir URL "${text}" names no folder; use maildir:///path/to/spool.`,
        "config",
      );
    }
    return { scheme, host: "", port: 0, user: "", password: "", path, tls: "none", auth: "password", params };
  }
  const s = scheme as Exclude<Scheme, "maildir">;
  if (!url.hostname) throw new MailError(`The mail URL "${redact(url)}" names no server.`, "config");
  const implicit = s.endsWith("s"); // smtps, imaps, pop3s
  let tls: TlsMode = implicit ? "implicit" : "starttls";
  const tlsParam = params.get("tls");
  if (tlsParam !== null) {
    if (tlsParam !== "none" && tlsParam !== "starttls" && tlsParam !== "implicit") {
      throw new MailError(
        `tls=${tlsParam} in "${redact(url)}" is not one of none, starttls, implicit.`,
        "config",
      );
    }
    tls = tlsParam;
  }
  const authParam = params.get("auth") ?? "password";
  if (authParam !== "password" && authParam !== "oauth2") {
    throw new MailError(`auth=${authParam} in "${redact(url)}" is not one of password, oauth2.`, "config");
  }
  if (authParam === "oauth2" && !url.username) {
    throw new MailError(
      `The mail URL "${
        redact(url)
      }" asks for auth=oauth2 but names no user; put your address before the @ (bob%40outlook.com@…).`,
      "config",
    );
  }
  const rawPath = decodeURIComponent(url.pathname.replace(/^\//, ""));
  return {
    scheme: s,
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : DEFAULT_PORTS[s],
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    path: s.startsWith("imap") ? (rawPath || "INBOX") : rawPath,
    tls,
    auth: authParam,
    params,
  };
}

/** The URL with the password removed: safe for logs and error messages. */
export function redact(url: URL | string): string {
  try {
    const u = new URL(String(url));
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return redactText(String(url));
  }
}

function redactText(text: string): string {
  return text.replace(/(\/\/[^:/@]*:)[^@]*@/, "$1***@");
}

/** "host:port" for messages. */
export function where(account: Account): string {
  return account.scheme === "maildir" ? account.path : `${account.host}:${account.port}`;
}

/** A duration parameter like "2s", "500ms", "1m" in the URL query, in milliseconds. */
export function durationParam(account: Account, name: string, fallbackMs: number): number {
  const v = account.params.get(name);
  if (v === null) return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v);
  if (!m) throw new MailError(`${name}=${v} is not a duration like 500ms, 2s or 1m.`, "config");
  const n = Number(m[1]);
  return m[2] === "ms" ? n : m[2] === "m" ? n * 60_000 : n * 1000;
}
