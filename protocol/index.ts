/**
 * identgate's protocol core: RFC 1413 requests, framing and replies, and the gateway<->worker wire
 * contract. Pure: no sockets, no timers, no node: imports; it runs unchanged in workerd.
 */
export * from './errors.js';
export * from './tokens.js';
export * from './request.js';
export * from './framing.js';
export * from './reply.js';
export * from './wire.js';
export * from './issues.js';
export * from './signature.js';
export * from './constraints.js';
export * from './audit.js';
