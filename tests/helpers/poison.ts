/** Poisoned mail for the robustness tests (issue 11): each carries the mailmeet marker subject. */

const enc = (s: string) => new TextEncoder().encode(s);

/** A multipart mail nested `depth` levels deep, a text/plain part at the bottom. */
export function nestedMail(depth: number, subject = "mailmeet rendezvous", to = "h@game.test"): Uint8Array {
  let body = "";
  for (let i = 0; i < depth; i++) {
    body += `Content-Type: multipart/mixed; boundary="b${i}"\r\n\r\n--b${i}\r\n`;
  }
  body += "Content-Type: text/plain\r\n\r\nhello\r\n";
  for (let i = depth - 1; i >= 0; i--) body += `--b${i}--\r\n`;
  return enc(
    `From: mallory@isp-b.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n${body}`,
  );
}

/** One header field of `bytes` bytes (a mail server may refuse more than a few hundred KiB). */
export function hugeHeaderMail(
  bytes: number,
  subject = "mailmeet rendezvous",
  to = "h@game.test",
): Uint8Array {
  // Folded into 900-byte lines: servers refuse longer lines, and folding is what a bomb would do.
  const lines = Math.ceil(bytes / 900);
  const value = Array.from({ length: lines }, () => "x".repeat(898)).join("\r\n ");
  return enc(
    `From: mallory@isp-b.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nX-Huge: ${value}\r\n\r\nbody\r\n`,
  );
}

/** Thousands of parts (under the 256 KiB fetch cap), then base64 garbage in a part claiming to be text. */
export function partBombMail(subject = "mailmeet rendezvous", to = "h@game.test"): Uint8Array {
  return enc(
    `From: mallory@isp-b.test\r\nTo: ${to}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n` +
      `Content-Type: multipart/mixed; boundary=b\r\n\r\n` +
      "--b\r\nContent-Type: application/x\r\n\r\n".repeat(6_000) +
      `--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n${
        "!@#$".repeat(5_000)
      }\r\n--b--\r\n`,
  );
}
