/**
 * identgate's Node side: the ident server and client, and the pieces that
 * connect them to the policy worker.
 */
export * from './server.js';
