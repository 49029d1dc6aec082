import { describe, expect, it } from 'vitest';
import { connectRaw } from '../../helpers/raw-peer.js';
import { startServer, TRANSPORTS } from '../../helpers/server.js';

describe.each(TRANSPORTS)('IdentServer on handler faults (%s transport)', (transport) => {
  it('answers UNKNOWN-ERROR and reports when the handler throws', async () => {
    const { port, errors } = await startServer(
      () => {
        throw new Error('boom');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR']);
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_HANDLER_FAILED']);
    expect(errors[0]!.message).toContain('boom');
  });

  it('answers UNKNOWN-ERROR and reports when the handler rejects', async () => {
    const { port, errors } = await startServer(
      async () => {
        throw new Error('async boom');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR']);
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_HANDLER_FAILED']);
  });

  it('never writes a reply that breaks the RFC rules', async () => {
    const { port, errors } = await startServer(
      (tx) => {
        if (tx.req.serverPort === 1) tx.replyWithUser('evil\r\n1, 2 : USERID : UNIX : root');
        else if (tx.req.serverPort === 2) tx.replyWithError('NOT-A-TOKEN');
        else tx.replyWithUser('UN IX', 'bob');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 9\r\n2, 9\r\n3, 9\r\n');
    expect(await peer.lines(3)).toEqual([
      '1, 9 : ERROR : UNKNOWN-ERROR',
      '2, 9 : ERROR : UNKNOWN-ERROR',
      '3, 9 : ERROR : UNKNOWN-ERROR',
    ]);
    expect(errors.map((e) => e.code)).toEqual([
      'ERR_IDENT_INVALID_REPLY',
      'ERR_IDENT_INVALID_REPLY',
      'ERR_IDENT_INVALID_REPLY',
    ]);
  });

  it('answers UNKNOWN-ERROR when the handler does not reply within the deadline, and keeps later replies in order', async () => {
    const { port, errors } = await startServer(
      (tx) => {
        if (tx.req.serverPort !== 1) tx.replyWithUser('fast');
      },
      { transport, queryDeadlineMs: 150 },
    );
    const peer = await connectRaw(port);
    const started = Date.now();
    peer.write('1, 9\r\n2, 9\r\n');
    expect(await peer.lines(2)).toEqual(['1, 9 : ERROR : UNKNOWN-ERROR', '2, 9 : USERID : OTHER : fast']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_HANDLER_TIMEOUT']);
  });

  it('ignores and reports a second reply', async () => {
    let second: boolean | undefined;
    const { port, errors } = await startServer(
      (tx) => {
        tx.replyWithUser('first');
        second = tx.replyWithUser('second');
      },
      { transport },
    );
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n3, 4\r\n');
    expect(await peer.lines(2)).toEqual(['1, 2 : USERID : OTHER : first', '3, 4 : USERID : OTHER : first']);
    expect(second).toBe(false);
    expect(errors.map((e) => e.code)).toEqual(['ERR_IDENT_DUPLICATE_REPLY', 'ERR_IDENT_DUPLICATE_REPLY']);
  });

  it('survives an onError callback that throws', async () => {
    const { port } = await startServer(
      () => {
        throw new Error('boom');
      },
      {
        transport,
        onError: () => {
          throw new Error('bad logger');
        },
      },
    );
    const peer = await connectRaw(port);
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR']);
  });
});
