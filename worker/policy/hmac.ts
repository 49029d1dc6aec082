/**
 * HMAC-SHA256 (RFC 2104) in synchronous JavaScript, for pseudonyms: WebCrypto would make every such
 * decision async; the key's pads are compressed once per policy (docs/internals.md).
 */

const K = Uint32Array.of(
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
);

const INITIAL_STATE = Uint32Array.of(
  0x6a09e667,
  0xbb67ae85,
  0x3c6ef372,
  0xa54ff53a,
  0x510e527f,
  0x9b05688c,
  0x1f83d9ab,
  0x5be0cd19,
);

const BLOCK_OCTETS = 64;

/** Runs the SHA-256 compression function over one 64-octet block, updating `state`. */
function compress(state: Uint32Array, block: Uint8Array, offset: number, w: Uint32Array): void {
  for (let t = 0; t < 16; t++) {
    const i = offset + t * 4;
    w[t] = (block[i]! << 24) | (block[i + 1]! << 16) | (block[i + 2]! << 8) | block[i + 3]!;
  }
  for (let t = 16; t < 64; t++) {
    const w15 = w[t - 15]!;
    const w2 = w[t - 2]!;
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3);
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10);
    w[t] = (w[t - 16]! + s0 + w[t - 7]! + s1) | 0;
  }
  let a = state[0]!,
    b = state[1]!,
    c = state[2]!,
    d = state[3]!;
  let e = state[4]!,
    f = state[5]!,
    g = state[6]!,
    h = state[7]!;
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const ch = (e & f) ^ (~e & g);
    const t1 = (h + S1 + ch + K[t]! + w[t]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const maj = (a & b) ^ (a & c) ^ (b & c);
    const t2 = (S0 + maj) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = state[0]! + a;
  state[1] = state[1]! + b;
  state[2] = state[2]! + c;
  state[3] = state[3]! + d;
  state[4] = state[4]! + e;
  state[5] = state[5]! + f;
  state[6] = state[6]! + g;
  state[7] = state[7]! + h;
}

/**
 * Finishes a hash whose first `prefixOctets` octets (a multiple of 64) are
 * already folded into `start`, by hashing `message` and the padding.
 */
function finish(start: Uint32Array, prefixOctets: number, message: Uint8Array): Uint8Array {
  const state = start.slice();
  const w = new Uint32Array(64);
  const whole = message.length - (message.length % BLOCK_OCTETS);
  for (let offset = 0; offset < whole; offset += BLOCK_OCTETS) compress(state, message, offset, w);
  const restOctets = message.length - whole;
  // Padding: 0x80, zeros, then the message length in bits as a 64-bit big-endian number.
  const tail = new Uint8Array(restOctets + 9 > BLOCK_OCTETS ? 2 * BLOCK_OCTETS : BLOCK_OCTETS);
  tail.set(message.subarray(whole));
  tail[restOctets] = 0x80;
  const bits = (prefixOctets + message.length) * 8;
  const view = new DataView(tail.buffer);
  view.setUint32(tail.length - 8, Math.floor(bits / 0x100000000));
  view.setUint32(tail.length - 4, bits >>> 0);
  for (let offset = 0; offset < tail.length; offset += BLOCK_OCTETS) compress(state, tail, offset, w);
  const digest = new Uint8Array(32);
  const out = new DataView(digest.buffer);
  for (let i = 0; i < 8; i++) out.setUint32(i * 4, state[i]!);
  return digest;
}

/** SHA-256 of `message`. */
export function sha256(message: Uint8Array): Uint8Array {
  return finish(INITIAL_STATE, 0, message);
}

/**
 * Returns a function computing HMAC-SHA256 under `key`. The pad blocks are
 * compressed here, once.
 *
 * @example
 * const mac = createHmacSha256(new TextEncoder().encode('secret'));
 * mac(new TextEncoder().encode('message')) // Uint8Array(32)
 */
export function createHmacSha256(key: Uint8Array): (message: Uint8Array) => Uint8Array {
  const block = new Uint8Array(BLOCK_OCTETS);
  block.set(key.length > BLOCK_OCTETS ? sha256(key) : key);
  const w = new Uint32Array(64);
  const inner = INITIAL_STATE.slice();
  const outer = INITIAL_STATE.slice();
  const pad = new Uint8Array(BLOCK_OCTETS);
  for (let i = 0; i < BLOCK_OCTETS; i++) pad[i] = block[i]! ^ 0x36;
  compress(inner, pad, 0, w);
  for (let i = 0; i < BLOCK_OCTETS; i++) pad[i] = block[i]! ^ 0x5c;
  compress(outer, pad, 0, w);
  return (message) => finish(outer, BLOCK_OCTETS, finish(inner, BLOCK_OCTETS, message));
}
