/**
 * Which kernel TCP sockets count as a connection with an owner (RFC 1413 §1: a live connection): held by a
 * process and neither TIME_WAIT, an orphaned FIN_WAIT, nor LISTEN.
 *
 * @example
 * isOwnedConnection(TCP_STATE.ESTABLISHED, 48213) // true
 * isOwnedConnection(TCP_STATE.TIME_WAIT, 0)       // false
 */

/** The kernel's TCP state numbers (include/net/tcp_states.h), as sock_diag and /proc/net/tcp report them. */
export const TCP_STATE = {
  ESTABLISHED: 1,
  SYN_SENT: 2,
  SYN_RECV: 3,
  FIN_WAIT1: 4,
  FIN_WAIT2: 5,
  TIME_WAIT: 6,
  CLOSE: 7,
  CLOSE_WAIT: 8,
  LAST_ACK: 9,
  LISTEN: 10,
  CLOSING: 11,
  NEW_SYN_RECV: 12,
} as const;

/** States in which both ends have seen the connection and one side may still be using it. */
const CONNECTED_STATES: ReadonlySet<number> = new Set([
  TCP_STATE.ESTABLISHED,
  TCP_STATE.FIN_WAIT1,
  TCP_STATE.FIN_WAIT2,
  TCP_STATE.CLOSE_WAIT,
  TCP_STATE.LAST_ACK,
  TCP_STATE.CLOSING,
]);

/**
 * True when a socket in `state` with inode `inode` is a connection some
 * process owns.
 *
 * @example
 * isOwnedConnection(TCP_STATE.LISTEN, 1062) // false
 */
export function isOwnedConnection(state: number, inode: number): boolean {
  return inode !== 0 && CONNECTED_STATES.has(state);
}
