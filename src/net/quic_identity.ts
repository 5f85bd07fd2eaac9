/**
 * The certificate a member's QUIC endpoint presents. QUIC insists on TLS 1.3 with a certificate
 * (RFC 9001), and Deno's client checks it against the `caCerts` it is given; mailmeet never uses a
 * public CA for links. Every member derives the same Ed25519 key from the network key, so the
 * certificate is pinned through what seals the mail: a stranger cannot present it, and nothing
 * extra has to travel by mail. It proves only "a member of the group"; which member, and forward
 * secrecy against a member, come from the Noise handshake that runs inside every QUIC link
 * (src/net/link.ts), exactly as on TCP.
 *
 * The certificate is one fixed DER structure (RFC 5280 §4.1, Ed25519 per RFC 8410): a self-signed
 * leaf with basicConstraints CA:FALSE marked critical (Deno's TLS refuses a CA certificate used
 * as an end entity) and the name below in subjectAltName. Ed25519 signatures are deterministic, so
 * every member builds the very same bytes.
 */
import { createPrivateKey, sign } from "node:crypto";
import { hkdf } from "../protocol/keys.ts";
import { concat, utf8 } from "../protocol/bytes.ts";

/** The TLS server name of every link endpoint (never resolved: links dial IP addresses). */
export const QUIC_SERVER_NAME = "link.mailmeet.invalid";
/** ALPN of the link protocol on QUIC (RFC 9001 §8.1 requires one). */
export const QUIC_ALPN = "mailmeet-link/1";

export interface QuicIdentity {
  /** PEM of the certificate: the server presents it, the client pins it (caCerts). */
  cert: string;
  /** PEM (PKCS #8) of the private key. */
  key: string;
}

const cache = new Map<string, QuicIdentity>();

// ─── A little DER (X.690) ─────────────────────────────────────────────────────────────────────

function tlv(tag: number, body: Uint8Array): Uint8Array {
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concat(Uint8Array.of(tag, ...len), body);
}
const seq = (...parts: Uint8Array[]) => tlv(0x30, concat(...parts));
const set = (...parts: Uint8Array[]) => tlv(0x31, concat(...parts));
const oid = (bytes: number[]) => tlv(0x06, Uint8Array.from(bytes));
const ED25519 = seq(oid([0x2b, 0x65, 0x70])); // 1.3.101.112, no parameters (RFC 8410 §3)
const bitString = (bytes: Uint8Array) => tlv(0x03, concat(Uint8Array.of(0), bytes));
const name = (cn: string) => seq(set(seq(oid([0x55, 0x04, 0x03]), tlv(0x0c, utf8(cn)))));

/** The to-be-signed part for `publicKey` (32 bytes), RFC 5280 §4.1.2. */
function tbsCertificate(publicKey: Uint8Array): Uint8Array {
  const subject = name(QUIC_SERVER_NAME);
  const basicConstraints = seq(oid([0x55, 0x1d, 0x13]), tlv(0x01, Uint8Array.of(0xff)), tlv(0x04, seq()));
  const altName = seq(oid([0x55, 0x1d, 0x11]), tlv(0x04, seq(tlv(0x82, utf8(QUIC_SERVER_NAME)))));
  return seq(
    tlv(0xa0, tlv(0x02, Uint8Array.of(2))), // v3
    tlv(0x02, Uint8Array.of(1)), // serial number
    ED25519,
    subject, // issuer: self-signed
    // Valid from 2020 to the end of 2199: UTCTime before 2050, GeneralizedTime after (§4.1.2.5).
    seq(tlv(0x17, utf8("200101000000Z")), tlv(0x18, utf8("21991231235959Z"))),
    subject,
    seq(ED25519, bitString(publicKey)),
    tlv(0xa3, seq(basicConstraints, altName)),
  );
}

function pem(label: string, der: Uint8Array): string {
  const b64 = der.toBase64().match(/.{1,64}/g)!.join("\n");
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** The group's link certificate and key, derived from the network key's secret. */
export function quicIdentity(networkSecret: Uint8Array): QuicIdentity {
  const id = networkSecret.toBase64();
  const known = cache.get(id);
  if (known) return known;
  const seed = hkdf(networkSecret, "mailmeet quic certificate v1");
  // PKCS #8 for an Ed25519 seed (RFC 8410 §7): a fixed prefix, then the 32 bytes.
  const pkcs8 = concat(
    Uint8Array.from([
      0x30,
      0x2e,
      0x02,
      0x01,
      0x00,
      0x30,
      0x05,
      0x06,
      0x03,
      0x2b,
      0x65,
      0x70,
      0x04,
      0x22,
      0x04,
      0x20,
    ]),
    seed,
  );
  const privateKey = createPrivateKey({ key: pkcs8 as unknown as Buffer, format: "der", type: "pkcs8" });
  const jwk = privateKey.export({ format: "jwk" }) as { x: string };
  const publicKey = Uint8Array.fromBase64(jwk.x, { alphabet: "base64url" });
  const tbs = tbsCertificate(publicKey);
  const signature = new Uint8Array(sign(null, tbs, privateKey));
  const cert = seq(tbs, ED25519, bitString(signature));
  const identity = { cert: pem("CERTIFICATE", cert), key: pem("PRIVATE KEY", pkcs8) };
  cache.set(id, identity);
  return identity;
}
