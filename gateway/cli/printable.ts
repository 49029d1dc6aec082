/**
 * What `identgate query` prints comes from a server that may be hostile: control characters (terminal escapes,
 * the 8-bit CSI, CR) and Unicode direction overrides are shown as escapes, never sent to the terminal.
 *
 * @example
 * escapeControls('1, 2 : USERID : UNIX : \x1b[2Jroot')   // '1, 2 : USERID : UNIX : \\x1b[2Jroot'
 * jsonForTerminal({ userId: '\x9b31m' })                 // '{"userId":"\\u009b31m"}'
 */

/** C0, DEL, C1 and the bidirectional controls; the backslash too, so an escape cannot be forged. */
const UNSAFE = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069\\]/gu;

function escapeOne(char: string): string {
  if (char === '\\') return '\\\\';
  const code = char.codePointAt(0)!;
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `text` with every control character as `\xHH` (`\u{HHHH}` above U+00FF) and `\` as `\\`. */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, escapeOne);
}

/** JSON.stringify, with the controls JSON leaves raw (DEL, C1, direction overrides) as \u escapes: the same JSON value. */
export function jsonForTerminal(value: unknown): string {
  return JSON.stringify(value).replace(
    /[\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}
