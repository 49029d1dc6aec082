/**
 * HMAC-SHA256 signatures of gateway->worker calls (WebCrypto, Node and workerd): timestamp, method,
 * path and body bound; any current secret, within the clock skew (docs/wire.md "Signatures").
 */

export const TIMESTAMP_HEADER = 'x-identgate-timestamp';
export const SIGNATURE_HEADER = 'x-identgate-signature';

/** Seconds a timestamp may differ from the verifier's clock, either way. */
export const MAX_CLOCK_SKEW_SECONDS = 60;

const encoder = new TextEncoder();
type HmacKey = Awaited<ReturnType<typeof crypto.subtle.importKey>>;
const keyCache = new Map<string, Promise<HmacKey>>();

function importKey(secret: string): Promise<HmacKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    if (keyCache.size > 64) keyCache.clear();
    keyCache.set(secret, key);
  }
  return key;
}

/**
 * The text a signature covers: timestamp, method, path and the exact body.
 *
 * @example
 * signedText('1700000000', 'POST', '/v1/ident', '{}') // '1700000000\nPOST\n/v1/ident\n{}'
 */
export function signedText(timestamp: string, method: string, path: string, body: string): string {
  return `${timestamp}\n${method.toUpperCase()}\n${path}\n${body}`;
}

/**
 * The two signature headers for a MAC already computed over signedText(...)
 * (lowercase hex): for a signer with its own HMAC primitive, such as the
 * gateway's node:crypto one, which costs far less per request than WebCrypto
 * in Node.
 *
 * @example
 * const text = signedText(timestamp, 'POST', path, body);
 * signedHeaders(timestamp, createHmac('sha256', secret).update(text).digest('hex'));
 */
export function signedHeaders(
  timestamp: string,
  macHex: string,
): Record<typeof TIMESTAMP_HEADER | typeof SIGNATURE_HEADER, string> {
  return { [TIMESTAMP_HEADER]: timestamp, [SIGNATURE_HEADER]: `v1=${macHex}` };
}

function toHex(buffer: ArrayBuffer): string {
  let hex = '';
  for (const byte of new Uint8Array(buffer)) hex += byte.toString(16).padStart(2, '0');
  return hex;
}

function fromHex(hex: string): Uint8Array | undefined {
  if (!/^(?:[0-9a-f]{2})+$/.test(hex)) return undefined;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Signs with the first secret (the current one during a rotation), with WebCrypto. */
export async function signatureHeaders(
  secrets: readonly string[],
  method: string,
  path: string,
  body: string,
  nowSeconds = Math.floor(Date.now() / 1000),
): Promise<Record<typeof TIMESTAMP_HEADER | typeof SIGNATURE_HEADER, string>> {
  const secret = secrets[0];
  if (!secret) throw new Error('no signing secret configured');
  const timestamp = String(nowSeconds);
  const mac = await crypto.subtle.sign(
    'HMAC',
    await importKey(secret),
    encoder.encode(signedText(timestamp, method, path, body)),
  );
  return signedHeaders(timestamp, toHex(mac));
}

/**
 * An HMAC-SHA256 primitive: the MAC of `octets` under `secret`. verifySignature uses WebCrypto's unless given one;
 * the Node worker passes node:crypto's (nodeHmacSha256 in worker/node.ts), synchronous, where WebCrypto's is a
 * thread-pool job per call.
 *
 * @example
 * const hmac: HmacSha256 = (secret, octets) => createHmac('sha256', secret).update(octets).digest();
 */
export type HmacSha256 = (secret: string, octets: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** Whether two MACs are equal, in time that depends only on their length. */
function macsEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ b[i]!;
  return difference === 0;
}

export type SignatureVerdict =
  /** `secretIndex`: which of the secrets signed (the audit trail records it). */
  | { ok: true; secretIndex: number }
  | {
      ok: false;
      code: 'missing_signature' | 'malformed_signature' | 'stale_signature' | 'bad_signature';
      message: string;
    };

export interface SignedRequest {
  method: string;
  path: string;
  body: string;
  timestamp: string | null | undefined;
  signature: string | null | undefined;
}

/** Checks a request's signature against every configured secret, in constant time per secret (with `hmac` when given). */
export async function verifySignature(
  secrets: readonly string[],
  request: SignedRequest,
  nowSeconds = Math.floor(Date.now() / 1000),
  maxSkewSeconds = MAX_CLOCK_SKEW_SECONDS,
  hmac?: HmacSha256,
): Promise<SignatureVerdict> {
  const { timestamp, signature } = request;
  if (!timestamp || !signature) {
    return {
      ok: false,
      code: 'missing_signature',
      message: `${TIMESTAMP_HEADER} and ${SIGNATURE_HEADER} headers are required`,
    };
  }
  const mac = signature.startsWith('v1=') ? fromHex(signature.slice(3)) : undefined;
  if (!/^\d{1,12}$/.test(timestamp) || !mac || mac.length !== 32) {
    return {
      ok: false,
      code: 'malformed_signature',
      message: `${SIGNATURE_HEADER} must be v1=<64 hex digits> with a numeric ${TIMESTAMP_HEADER}`,
    };
  }
  if (Math.abs(nowSeconds - Number(timestamp)) > maxSkewSeconds) {
    return {
      ok: false,
      code: 'stale_signature',
      message: `timestamp is more than ${maxSkewSeconds} s away from the worker's clock`,
    };
  }
  const text = encoder.encode(signedText(timestamp, request.method, request.path, request.body));
  for (const [secretIndex, secret] of secrets.entries()) {
    // crypto.subtle.verify compares in constant time, as macsEqual does.
    const ok = hmac
      ? macsEqual(await hmac(secret, text), mac)
      : await crypto.subtle.verify('HMAC', await importKey(secret), mac, text);
    if (ok) return { ok: true, secretIndex };
  }
  return { ok: false, code: 'bad_signature', message: 'signature does not match any configured secret' };
}
