/**
 * End to end, gateway -> policy worker on Node over HTTP: two real CLI
 * processes, `identgate worker` and `identgate serve --upstream`, sharing a
 * signing secret. Queries are answered by the worker's policy (including a rule
 * on the gateway's name), the worker logs each decision with its rule, a dead or
 * stalled worker turns into UNKNOWN-ERROR within the gateway's deadline, and a
 * worker restarted on the same port is used again at once.
 */
import { describe, expect, it } from 'vitest';
import { IdentClient } from '../../gateway/client/client.js';
import { kill, onCleanup, startServe, startWorker, tempFiles, waitForLog, type TempFiles } from './harness.js';

/** The deadline of the tests about a failing worker. */
const DEADLINE_MS = 500;
/** The deadline of the other tests: generous, so a busy machine cannot turn an answer into the fallback. */
const RELAXED_DEADLINE_MS = 5_000;
/**
 * How late past the deadline an answer may be on a busy machine (timers,
 * scheduling). Below the server's own backstop (deadline + 1000 ms), so an
 * answer from the backstop instead of the resolver's deadline fails the test.
 */
const SCHEDULING_SLACK_MS = 700;

const POLICY = {
  version: 1,
  rules: [
    { name: 'fixed-answer', match: { serverPort: 400 }, action: { userId: 'grimlock' } },
    { name: 'other-gateways', match: { gateway: 'eu-*', serverPort: 402 }, action: { userId: 'not-this-gateway' } },
    {
      name: 'this-gateway',
      match: { gateway: ['e2e', 'e2e-*'], serverPort: 402 },
      action: { userId: 'e2e-gateway-user' },
      opsys: 'UNIX',
    },
  ],
  default: { action: { error: 'HIDDEN-USER' } },
};

async function setUp(deadlineMs: number, files: TempFiles = tempFiles()) {
  const worker = await startWorker(['--policy', files.policy(POLICY), '--secret-file', files.secret()]);
  const gateway = await startServe([
    '--upstream',
    worker.url,
    '--secret-file',
    files.secret(),
    '--gateway-name',
    'e2e',
    '--deadline',
    String(deadlineMs),
    '--owner-lookup',
    'off',
  ]);
  const client = new IdentClient({ hostname: '127.0.0.1', port: gateway.port, timeout: 10_000 });
  onCleanup(() => client.close());
  return { files, worker, gateway, client };
}

/**
 * Waits until the chain answers from the worker. With a 500 ms deadline the very
 * first answer (new HTTP connection, cold worker) can miss it on a busy machine;
 * that is the deadline doing its job, not what these tests are about.
 */
async function untilAnswered(client: IdentClient): Promise<void> {
  await expect
    .poll(async () => (await client.ident(400, 500)).userId, { timeout: 15_000, interval: 200 })
    .toBe('grimlock');
}

/** Asks once and measures how long the answer took. */
async function timedIdent(client: IdentClient, serverPort: number, clientPort: number) {
  const started = performance.now();
  const response = await client.ident(serverPort, clientPort);
  return { response, elapsedMs: performance.now() - started };
}

describe('identgate serve --upstream -> identgate worker', () => {
  it("answers with the worker's policy, matching a rule on the gateway's name", async () => {
    const { client } = await setUp(RELAXED_DEADLINE_MS);
    const [fixed, byGateway, byDefault] = await Promise.all([
      client.ident(400, 500),
      client.ident(402, 600),
      client.ident(403, 600),
    ]);
    expect(fixed.raw).toBe('400, 500 : USERID : OTHER : grimlock');
    expect(byGateway.raw).toBe('402, 600 : USERID : UNIX : e2e-gateway-user');
    expect(byDefault.raw).toBe('403, 600 : ERROR : HIDDEN-USER');
  });

  it('logs every decision on the worker in a JSON line naming the rule and the gateway', async () => {
    const { client, worker } = await setUp(RELAXED_DEADLINE_MS);
    await client.ident(402, 601);
    type Decision = { serverPort: number; clientPort: number };
    const asked = (decision: Decision) => decision.serverPort === 402 && decision.clientPort === 601;
    const [line] = await waitForLog(
      worker.cli,
      (entry) => entry.msg === 'decisions' && (entry.decisions as Decision[]).some(asked),
    );
    const decision = (line!.decisions as Decision[]).find(asked);
    expect(decision).toMatchObject({
      rule: 'this-gateway',
      gateway: 'e2e',
      answer: { type: 'USERID', userId: 'e2e-gateway-user' },
      remoteAddress: '127.0.0.1',
    });
  });

  it('answers UNKNOWN-ERROR within the deadline once the worker is killed', async () => {
    const { client, worker } = await setUp(DEADLINE_MS);
    await untilAnswered(client);
    await kill(worker.cli);
    const { response, elapsedMs } = await timedIdent(client, 400, 501);
    expect(response.raw).toBe('400, 501 : ERROR : UNKNOWN-ERROR');
    expect(elapsedMs).toBeLessThan(DEADLINE_MS + SCHEDULING_SLACK_MS);
  });

  it('answers UNKNOWN-ERROR at the deadline while the worker is stalled (SIGSTOP)', async () => {
    const { client, worker } = await setUp(DEADLINE_MS);
    await untilAnswered(client);
    worker.cli.child.kill('SIGSTOP');
    onCleanup(() => void worker.cli.child.kill('SIGCONT'));
    const { response, elapsedMs } = await timedIdent(client, 400, 502);
    expect(response.raw).toBe('400, 502 : ERROR : UNKNOWN-ERROR');
    // The gateway waited for the worker until the deadline, and not much longer.
    expect(elapsedMs).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
    expect(elapsedMs).toBeLessThan(DEADLINE_MS + SCHEDULING_SLACK_MS);
  });

  it('answers from the worker again as soon as it is restarted on the same port', async () => {
    const { client, worker, files } = await setUp(RELAXED_DEADLINE_MS);
    expect((await client.ident(400, 500)).userId).toBe('grimlock');
    await kill(worker.cli);
    // Refused at once, so the fallback comes without waiting for the deadline.
    expect((await client.ident(400, 503)).raw).toBe('400, 503 : ERROR : UNKNOWN-ERROR');
    await startWorker(['--policy', files.policy(POLICY), '--secret-file', files.secret()], `127.0.0.1:${worker.port}`);
    // No circuit breaker: the first query after the restart reaches the new worker.
    expect((await client.ident(400, 504)).raw).toBe('400, 504 : USERID : OTHER : grimlock');
    expect((await client.ident(402, 504)).raw).toBe('402, 504 : USERID : UNIX : e2e-gateway-user');
  });
});
