import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { startServer, TRANSPORTS } from '../../helpers/server.js';

const vectors = JSON.parse(readFileSync(new URL('../../fixtures/rfc1413.json', import.meta.url), 'utf8')) as {
  requests: { line: string; expect: { query: [number, number] } | 'INVALID-PORT' }[];
};

describe.each(TRANSPORTS)('IdentServer on invalid lines (%s transport)', (transport) => {
  it('answers every conformance request vector on one connection, handler only for valid ones', async () => {
    const asked: string[] = [];
    const { port } = await startServer(
      (tx) => {
        asked.push(`${tx.req.serverPort},${tx.req.clientPort}`);
        tx.replyWithError('NO-USER');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write(Buffer.from(vectors.requests.map((v) => `${v.line}\r\n`).join(''), 'utf8'));
    const lines = await peer.lines(vectors.requests.length);
    vectors.requests.forEach((vector, i) => {
      if (vector.expect === 'INVALID-PORT')
        expect(lines[i], JSON.stringify(vector.line)).toMatch(/^\d+, \d+ : ERROR : INVALID-PORT$/);
      else expect(lines[i]).toBe(`${vector.expect.query[0]}, ${vector.expect.query[1]} : ERROR : NO-USER`);
    });
    expect(asked).toEqual(
      vectors.requests.flatMap((v) => (v.expect === 'INVALID-PORT' ? [] : [v.expect.query.join(',')])),
    );
    expect(peer.socket.destroyed).toBe(false);
  });

  it('never echoes client bytes back in an INVALID-PORT reply', async () => {
    const { port } = await startServer((tx) => tx.replyWithError('NO-USER'), { transport });
    const peer = await connectRaw(port);
    peer.write('<script>evil</script>, 5\r\n99999, 3\r\n\x00\xff\r\n');
    expect(await peer.lines(3)).toEqual([
      '0, 0 : ERROR : INVALID-PORT',
      '99999, 3 : ERROR : INVALID-PORT',
      '0, 0 : ERROR : INVALID-PORT',
    ]);
  });

  it('keeps the connection open after an invalid line', async () => {
    const { port } = await startServer((tx) => tx.replyWithUser('alice'), { transport });
    const peer = await connectRaw(port);
    peer.write('hello\r\n');
    await peer.lines(1);
    peer.write('1, 2\r\n');
    expect(await peer.lines(2)).toEqual(['0, 0 : ERROR : INVALID-PORT', '1, 2 : USERID : OTHER : alice']);
  });
});
