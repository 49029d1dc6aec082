/**
 * The reply vectors of test/fixtures/rfc1413.json, end to end: a fake server
 * writes each line as literal bytes (CRLF-terminated) and IdentClient must read
 * the `replies` as the vector says and reject every `bad_replies` line as
 * malformed.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IdentClient, IdentMalformedReplyError, type IdentResponse } from '../../../gateway/client/client.js';
import { FakeIdentServer } from './fake-server.js';

interface Vectors {
  replies: {
    line: string;
    expect: {
      serverPort: number;
      clientPort: number;
      type: 'USERID' | 'ERROR';
      opsys?: string;
      charset?: string;
      userId?: string;
      error?: string;
    };
  }[];
  bad_replies: string[];
}

const vectors = JSON.parse(readFileSync(new URL('../../fixtures/rfc1413.json', import.meta.url), 'utf8')) as Vectors;

/** The reply the server should write for the next request: one vector line per test. */
let nextReply = '';
let server: FakeIdentServer;

beforeAll(async () => {
  server = await FakeIdentServer.start((_line, socket) => socket.write(Buffer.from(`${nextReply}\r\n`, 'utf8')));
});
afterAll(async () => {
  await server.close();
});

function expected(vector: Vectors['replies'][number]): Partial<IdentResponse> {
  const { serverPort, clientPort } = vector.expect;
  if (vector.expect.type === 'ERROR')
    return { serverPort, clientPort, isSuccess: false, errorType: vector.expect.error, userId: undefined };
  const { opsys, charset, userId } = vector.expect;
  return { serverPort, clientPort, isSuccess: true, opsys, charset, userId, errorType: undefined };
}

describe('reply vectors read by IdentClient', () => {
  for (const vector of vectors.replies) {
    it(`reads ${JSON.stringify(vector.line)}`, async () => {
      nextReply = vector.line;
      const client = new IdentClient({ port: server.port, timeout: 2_000 });
      try {
        const response = await client.ident(vector.expect.serverPort, vector.expect.clientPort);
        expect(response).toMatchObject(expected(vector));
        expect(response.raw).toBe(vector.line);
      } finally {
        await client.close();
      }
    });
  }
});

describe('bad reply vectors rejected by IdentClient', () => {
  for (const line of vectors.bad_replies) {
    it(`rejects ${JSON.stringify(line)} as malformed`, async () => {
      nextReply = line;
      const client = new IdentClient({ port: server.port, timeout: 2_000 });
      try {
        const asked = client.ident(6193, 23);
        await expect(asked).rejects.toThrow(IdentMalformedReplyError);
        await expect(asked).rejects.toMatchObject({ code: 'ERR_IDENT_MALFORMED_REPLY', line });
      } finally {
        await client.close();
      }
    });
  }
});
