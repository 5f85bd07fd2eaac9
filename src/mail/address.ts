/**
 * The one check of "is this an e-mail address" (a bare addr-spec, RFC 5322 §3.4.1), shared by the
 * CLI, the protocol's reply address, the plain composer and the maildir spool.
 *
 * Deliberately loose: one `@` with something on each side, and none of the characters that would
 * end an address inside a header or an address list (white space, `<>",;`). Everything else is the
 * mail server's to judge, so plus/subaddresses (`a+tag@x`), IDN (`ö@bücher.example`, punycode) and
 * other RFC 5322 atext (`!#$%&'=?^_{|}~`, `*`, `/`) all pass.
 */
const ADDR_SPEC = /^[^\s@<>",;]+@[^\s@<>",;]+$/;

export function isMailAddress(text: string): boolean {
  return ADDR_SPEC.test(text);
}
