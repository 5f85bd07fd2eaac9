/**
 * The usual mail servers of well-known providers, so `init` can suggest them from the domain of an
 * address, and the notes a newcomer needs (app passwords, IMAP to switch on). Only suggestions:
 * the user confirms or types their own. Settings as the providers publish them for mail clients.
 */

export interface Provider {
  name: string;
  domains: readonly string[];
  /** Sending: implicit TLS (smtps, usually 465) or STARTTLS (smtp, usually 587). */
  smtp: { scheme: "smtps" | "smtp"; host: string; port: number };
  imap: { host: string; port: number };
  pop3?: { host: string; port: number };
  /** What the user must do before a mail program may log in. */
  note: string;
  /** The login name, when it is not the whole address. */
  login?: (address: string) => string;
}

export const PROVIDERS: readonly Provider[] = [
  {
    name: "Gmail",
    domains: ["gmail.com", "googlemail.com"],
    smtp: { scheme: "smtps", host: "smtp.gmail.com", port: 465 },
    imap: { host: "imap.gmail.com", port: 993 },
    pop3: { host: "pop.gmail.com", port: 995 },
    note:
      "Gmail needs an app password: turn on 2-Step Verification, then create one under Google Account → Security → App passwords.",
  },
  {
    name: "Outlook.com / Hotmail",
    domains: [
      "outlook.com",
      "hotmail.com",
      "live.com",
      "msn.com",
      "outlook.de",
      "hotmail.de",
      "hotmail.co.uk",
    ],
    smtp: { scheme: "smtp", host: "smtp-mail.outlook.com", port: 587 },
    imap: { host: "outlook.office365.com", port: 993 },
    pop3: { host: "outlook.office365.com", port: 995 },
    note:
      'Outlook.com refuses passwords for mail programs: sign in with OAuth2 instead, `mailmeet init --oauth microsoft --oauth-client-id ID` (README: "Signing in with OAuth2").',
  },
  {
    name: "Yahoo Mail",
    domains: ["yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "ymail.com", "rocketmail.com"],
    smtp: { scheme: "smtps", host: "smtp.mail.yahoo.com", port: 465 },
    imap: { host: "imap.mail.yahoo.com", port: 993 },
    pop3: { host: "pop.mail.yahoo.com", port: 995 },
    note: "Yahoo needs an app password: Account Security → Generate app password.",
  },
  {
    name: "iCloud Mail",
    domains: ["icloud.com", "me.com", "mac.com"],
    smtp: { scheme: "smtp", host: "smtp.mail.me.com", port: 587 },
    imap: { host: "imap.mail.me.com", port: 993 },
    note:
      "iCloud needs an app-specific password (appleid.apple.com → Sign-In and Security); IMAP logs in with the name before @, SMTP with the whole address.",
    login: (address) => address.split("@")[0],
  },
  {
    name: "GMX",
    domains: ["gmx.net", "gmx.de", "gmx.at", "gmx.ch", "gmx.com"],
    smtp: { scheme: "smtp", host: "mail.gmx.net", port: 587 },
    imap: { host: "imap.gmx.net", port: 993 },
    pop3: { host: "pop.gmx.net", port: 995 },
    note: 'GMX: switch on "POP3/IMAP access" in the web mail settings (E-Mail → POP3/IMAP) first.',
  },
  {
    name: "WEB.DE",
    domains: ["web.de"],
    smtp: { scheme: "smtp", host: "smtp.web.de", port: 587 },
    imap: { host: "imap.web.de", port: 993 },
    pop3: { host: "pop3.web.de", port: 995 },
    note: 'WEB.DE: switch on "POP3/IMAP access" in the web mail settings first.',
  },
  {
    name: "AOL Mail",
    domains: ["aol.com", "aim.com"],
    smtp: { scheme: "smtps", host: "smtp.aol.com", port: 465 },
    imap: { host: "imap.aol.com", port: 993 },
    pop3: { host: "pop.aol.com", port: 995 },
    note: "AOL needs an app password: Account Security → Generate app password.",
  },
  {
    name: "Fastmail",
    domains: ["fastmail.com", "fastmail.fm"],
    smtp: { scheme: "smtps", host: "smtp.fastmail.com", port: 465 },
    imap: { host: "imap.fastmail.com", port: 993 },
    pop3: { host: "pop.fastmail.com", port: 995 },
    note: "Fastmail needs an app password: Settings → Privacy & Security → App passwords.",
  },
  {
    name: "Zoho Mail",
    domains: ["zoho.com", "zohomail.com"],
    smtp: { scheme: "smtps", host: "smtp.zoho.com", port: 465 },
    imap: { host: "imap.zoho.com", port: 993 },
    pop3: { host: "pop.zoho.com", port: 995 },
    note: "Zoho: enable IMAP access in the mail settings; with two-factor sign-in, use an app password.",
  },
  {
    name: "Yandex Mail",
    domains: ["yandex.com", "yandex.ru", "ya.ru"],
    smtp: { scheme: "smtps", host: "smtp.yandex.com", port: 465 },
    imap: { host: "imap.yandex.com", port: 993 },
    pop3: { host: "pop.yandex.com", port: 995 },
    note: "Yandex: allow mail programs in the mail settings and use an app password.",
  },
  {
    name: "Proton Mail (through Proton Mail Bridge)",
    domains: ["proton.me", "protonmail.com", "pm.me"],
    smtp: { scheme: "smtp", host: "127.0.0.1", port: 1025 },
    imap: { host: "127.0.0.1", port: 1143 },
    note:
      "Proton Mail works only through Proton Mail Bridge on this machine: use the password the Bridge shows, and pass the Bridge's certificate with --tls-ca.",
  },
];

export interface Suggestion {
  /** Undefined when the domain is not a known provider (the servers are then a guess). */
  provider?: Provider;
  smtp: string;
  inbox: string;
  login: string;
  note?: string;
}

export function providerFor(address: string): Provider | undefined {
  const domain = address.split("@")[1]?.toLowerCase();
  return domain ? PROVIDERS.find((p) => p.domains.includes(domain)) : undefined;
}

/**
 * Server URLs (without credentials) to offer for an address: a known provider's, else the common
 * smtp.DOMAIN / imap.DOMAIN names on the usual TLS ports.
 */
export function suggestServers(address: string): Suggestion {
  const domain = (address.split("@")[1] ?? "example.org").toLowerCase();
  const p = providerFor(address);
  if (!p) {
    return {
      smtp: `smtp://smtp.${domain}:587`,
      inbox: `imaps://imap.${domain}:993/INBOX`,
      login: address,
    };
  }
  return {
    provider: p,
    smtp: `${p.smtp.scheme}://${p.smtp.host}:${p.smtp.port}`,
    inbox: `imap${p.imap.port === 993 ? "s" : ""}://${p.imap.host}:${p.imap.port}/INBOX`,
    login: p.login ? p.login(address) : address,
    note: p.note,
  };
}

/**
 * Puts a login and password into a server URL (percent-encoded, as mail URLs carry them); a URL
 * that already names a user, or a maildir: URL, is returned as it is.
 */
export function withCredentials(serverUrl: string, login: string, password: string): string {
  const u = new URL(serverUrl);
  if (u.protocol === "maildir:" || u.username) return serverUrl;
  u.username = encodeURIComponent(login);
  u.password = encodeURIComponent(password);
  return u.toString();
}
