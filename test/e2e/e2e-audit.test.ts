import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'libsql';
import { describe, expect, it } from 'vitest';
import { AuditPageSchema, GatewaysSchema } from '../../protocol/audit.js';
import { identgateVersion } from '../../gateway/version.js';
import { runCli } from '../helpers/cli.js';
import { connectRaw } from '../helpers/raw-peer.js';
import { logLines, onCleanup, startServe, startWorker, tempFiles, waitForLog } from './harness.js';

/** Sends `count` queries on each of `connections` connections at once; resolves every reply line and the time taken. */
async function load(port: number, connections: number, count: number): Promise<{ replies: string[]; ms: number }> {
  const started = performance.now();
  const peers = await Promise.all(Array.from({ length: connections }, () => connectRaw(port)));
  for (const [c, peer] of peers.entries()) {
    let text = '';
    for (let i = 0; i < count; i++) text += `${1024 + i}, ${10_000 + c}\r\n`;
    peer.write(text);
  }
  const replies = (await Promise.all(peers.map((peer) => peer.lines(count, 20_000)))).flat();
  for (const peer of peers) peer.socket.destroy();
  return { replies, ms: performance.now() - started };
}

function recordCount(path: string): number {
  const db = new Database(path);
  try {
    return (db.prepare('SELECT count(*) AS n FROM audit_records').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

describe('end to end: the audit trail', () => {
  it('records what a gateway asks the Node worker, and identgate audit search finds it', async () => {
    const files = tempFiles();
    const admin = join(files.dir, 'admin');
    writeFileSync(admin, 'e2e-admin-token-0123456789\n');
    const audit = join(files.dir, 'audit.db');
    const worker = await startWorker(['--secret-file', files.secret(), '--admin-token-file', admin, '--audit', audit]);
    const gateway = await startServe([
      '--upstream',
      worker.url,
      '--secret-file',
      files.secret(),
      '--owner-lookup',
      'off',
      '--gateway-name',
      'e2e-gw',
    ]);
    const { replies } = await load(gateway.port, 1, 3);
    expect(replies).toEqual([
      '1024, 10000 : ERROR : NO-USER',
      '1025, 10000 : ERROR : NO-USER',
      '1026, 10000 : ERROR : NO-USER',
    ]);
    const search = ['audit', 'search', '--worker', worker.url, '--admin-token-file', admin, '--gateway', 'e2e-gw'];
    let page = AuditPageSchema.parse({ records: [], next: null });
    await expect
      .poll(async () => {
        page = AuditPageSchema.parse(JSON.parse((await runCli([...search, '--json'])).stdout));
        return page.records.length;
      })
      .toBe(3);
    expect(page.records.map((r) => r.query.serverPort)).toEqual([1026, 1025, 1024]);
    expect(page.records[0]).toMatchObject({
      gateway: 'e2e-gw',
      signingKey: expect.stringMatching(/^k0:/),
      owner: null,
    });
    const table = await runCli([...search, '--server-port', '1025']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^TIME +GATEWAY +QUERIER +PORTS/);
    expect(table.stdout).toContain('1025,10000');
    const fleet = await fetch(`${worker.url}/v1/gateways`, {
      headers: { authorization: 'Bearer e2e-admin-token-0123456789' },
    });
    expect(GatewaysSchema.parse(await fleet.json()).gateways).toEqual([
      expect.objectContaining({ name: 'e2e-gw', version: identgateVersion(), queries: 3 }),
    ]);
  });

  it('answers every query at full speed while another process holds the audit file locked, and writes them all after', async () => {
    const files = tempFiles();
    const audit = join(files.dir, 'audit.db');
    const gateway = await startServe(['--owner-lookup', 'off', '--audit', audit]);
    const locker = new Database(audit);
    locker.exec('BEGIN EXCLUSIVE');
    onCleanup(() => {
      if (locker.inTransaction) locker.exec('ROLLBACK');
      locker.close();
    });
    const { replies, ms } = await load(gateway.port, 4, 500);
    expect(replies).toHaveLength(2000);
    expect(replies.every((line) => line.endsWith(' : ERROR : NO-USER'))).toBe(true);
    // The deadline is 1000 ms; answers waiting on the database would take the busy timeout (5 s) at least.
    expect(ms).toBeLessThan(4_000);
    locker.exec('COMMIT');
    await expect.poll(() => recordCount(audit), { timeout: 15_000, interval: 200 }).toBe(2000);
  });

  it('answers every query while the audit database refuses every write, counting and warning about the drops', async () => {
    const files = tempFiles();
    const audit = join(files.dir, 'audit.db');
    const gateway = await startServe(['--owner-lookup', 'off', '--audit', audit, '--metrics', '127.0.0.1:0']);
    const db = new Database(audit);
    db.exec(
      "CREATE TRIGGER refuse BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    );
    db.close();
    const { replies } = await load(gateway.port, 2, 500);
    expect(replies).toHaveLength(1000);
    expect(replies.every((line) => line.endsWith(' : ERROR : NO-USER'))).toBe(true);
    const [serving] = logLines(gateway.cli).filter((line) => line.msg === 'identgate serving');
    const metrics = `http://127.0.0.1:${String(serving!.metricsPort)}/metrics`;
    await expect
      .poll(
        async () =>
          /identgate_audit_records_total\{outcome="write_failed"\} (\d+)/.exec(
            await (await fetch(metrics)).text(),
          )?.[1],
        {
          timeout: 15_000,
          interval: 200,
        },
      )
      .toBe('1000');
    const [warning] = await waitForLog(gateway.cli, (line) => line.msg === 'audit_records_dropped');
    expect(String(warning!.error)).toContain('database or disk is full');
    expect(logLines(gateway.cli).filter((line) => line.msg === 'audit_records_dropped')).toHaveLength(1);
    expect(recordCount(audit)).toBe(0);
  });
});
