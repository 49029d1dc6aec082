/**
 * Audit records for the store tests, in Node and inside workerd: a decision
 * built from a few facts, like fixtures.ts builds lookup requests. Pure.
 *
 * @example
 * await store.writeDecisions([auditRecord({ at: Date.parse('2026-12-04T12:03:00Z'), userId: 'u7algntdlwuka' })]);
 */
import type { AuditRecord } from '../../../worker/stores/audit.js';

export interface RecordFacts {
  at?: number;
  gateway?: string;
  requestId?: string;
  userId?: string;
  error?: string;
  remoteAddress?: string;
  serverPort?: number;
  clientPort?: number;
  uid?: number | null;
  userName?: string | null;
  claimUser?: string;
  claimIdent?: string;
  signingKey?: string | null;
  rule?: string;
}

export const T0 = Date.parse('2026-12-04T12:00:00.000Z');

export function auditRecord(facts: RecordFacts = {}): AuditRecord {
  return {
    at: facts.at ?? T0,
    gateway: facts.gateway ?? 'gw1',
    signingKey: facts.signingKey === undefined ? 'k0:0123abcd' : facts.signingKey,
    gatewayVersion: '0.1.0',
    requestId: facts.requestId ?? 'gw1-1',
    query: { serverPort: facts.serverPort ?? 6667, clientPort: facts.clientPort ?? 40112 },
    connection: {
      localAddress: '198.51.100.1',
      localPort: 113,
      remoteAddress: facts.remoteAddress ?? '192.0.2.7',
      remotePort: 51000,
    },
    owner:
      facts.uid === null
        ? null
        : { uid: facts.uid ?? 1000, userName: facts.userName === undefined ? 'alice' : facts.userName },
    claim:
      facts.claimUser === undefined
        ? null
        : facts.claimIdent === undefined
          ? { user: facts.claimUser }
          : { user: facts.claimUser, ident: facts.claimIdent },
    answer:
      facts.error !== undefined
        ? ({ type: 'ERROR', error: facts.error } as AuditRecord['answer'])
        : { type: 'USERID', opsys: 'OTHER', userId: facts.userId ?? 'u7algntdlwuka' },
    rule: facts.rule ?? 'pseudonyms',
    policyVersion: '3f1c0a9b5e2d4c71',
  };
}
