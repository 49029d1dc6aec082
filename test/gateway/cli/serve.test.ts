import { copyFileSync, cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ident } from '../../../gateway/client/client.js';
import { SERVE_FLAGS } from '../../../gateway/cli/flags.js';
import { connectRaw } from '../../helpers/raw-peer.js';
import { listeningPort, ROOT, runCli, startCli } from '../../helpers/cli.js';

const READY = /listening on .*\n/;

describe('identgate serve', () => {
  it('answers every query with --reply NAME and opsys OTHER', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'nobody'], READY);
    const port = listeningPort(serve.stdout());
    expect(await ident({ port, serverPort: 6193, clientPort: 23 })).toMatchObject({
      isSuccess: true,
      userId: 'nobody',
      opsys: 'OTHER',
    });
  });

  it('answers with --reply NAME --opsys UNIX', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'ircuser', '--opsys', 'UNIX'], READY);
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\n');
    expect(await peer.lines(1)).toEqual(['1, 2 : USERID : UNIX : ircuser']);
  });

  it('answers every query with --reply-error TOKEN', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply-error', 'HIDDEN-USER'], READY);
    expect(await ident({ port: listeningPort(serve.stdout()), serverPort: 1, clientPort: 2 })).toMatchObject({
      isSuccess: false,
      errorType: 'HIDDEN-USER',
    });
  });

  it('listens on several --listen addresses, IPv4 and IPv6', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--listen', '[::1]:0', '--reply', 'both'], READY);
    const ports = [...serve.stdout().matchAll(/(?:127\.0\.0\.1|\[::1\]):(\d+)/g)].map((m) => Number(m[1]));
    expect(await ident({ hostname: '127.0.0.1', port: ports[0]!, serverPort: 1, clientPort: 2 })).toMatchObject({
      userId: 'both',
    });
    expect(await ident({ hostname: '::1', port: ports[1]!, serverPort: 1, clientPort: 2 })).toMatchObject({
      userId: 'both',
    });
  });

  it('answers UNKNOWN-ERROR for every error with --hide-errors', async () => {
    const serve = await startCli(
      ['serve', '--listen', '127.0.0.1:0', '--reply-error', 'NO-USER', '--hide-errors'],
      READY,
    );
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\nbad\r\n');
    expect(await peer.lines(2)).toEqual(['1, 2 : ERROR : UNKNOWN-ERROR', '0, 0 : ERROR : UNKNOWN-ERROR']);
  });

  it('answers with the embedded policy from --policy and reloads it on SIGHUP', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'identgate-cli-'));
    const file = join(dir, 'policy.json');
    const policy = (userId: string) => ({ version: 1, rules: [], default: { action: { userId } } });
    writeFileSync(file, JSON.stringify(policy('before')));
    const serve = await startCli(
      ['serve', '--listen', '127.0.0.1:0', '--policy', file, '--owner-lookup', 'off'],
      READY,
    );
    const port = listeningPort(serve.stdout());
    expect(await ident({ port, serverPort: 1, clientPort: 2 })).toMatchObject({ userId: 'before', opsys: 'OTHER' });
    writeFileSync(file, JSON.stringify(policy('after')));
    serve.child.kill('SIGHUP');
    await expect
      .poll(async () => (await ident({ port, serverPort: 1, clientPort: 2 })).userId, { timeout: 5_000 })
      .toBe('after');
  });

  it('stops gracefully on SIGTERM, answering a query in flight, and exits 0', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'bye'], READY);
    const peer = await connectRaw(listeningPort(serve.stdout()));
    peer.write('1, 2\r\n');
    await peer.lines(1);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    expect(await peer.closed()).toBe('1, 2 : USERID : OTHER : bye\r\n');
  });

  it('refuses bad configuration with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--listen', 'nope'], /--listen "nope": expected ADDRESS:PORT/],
      [['serve', '--reply', 'a', '--reply-error', 'NO-USER'], /cannot be combined/],
      [['serve', '--reply-error', 'WHATEVER'], /--reply-error "WHATEVER"/],
      [
        ['serve', '--listen', '127.0.0.1:0', '--reply', ' leading-space'],
        /--reply " leading-space": user id must not start with white space/,
      ],
      [['serve', '--upstream', 'http://127.0.0.1:1'], /--upstream needs --secret-file/],
      [['serve', '--upstream', 'ftp://x', '--secret-file', '/dev/null'], /only http: and https:/],
      [['serve', '--policy', '/nonexistent/policy.json', '--listen', '127.0.0.1:0'], /nonexistent/],
      [['serve', '--owner-lookup', 'maybe'], /--owner-lookup "maybe": expected auto, on or off/],
      [['serve', '--max-connections', '0'], /--max-connections "0": expected a positive whole number/],
      [
        ['serve', '--per-address-prefix6', '129'],
        /--per-address-prefix6 "129": expected a prefix length from 1 to 128/,
      ],
      [['serve', '--per-address-prefix6', '0'], /--per-address-prefix6 "0": expected a positive whole number/],
      [['serve', '--secret-file', '/dev/null'], /--secret-file goes with --upstream/],
      [['serve', '--batch-hold', '5'], /--batch-hold goes with --upstream/],
      [
        ['serve', '--upstream', 'http://127.0.0.1:1', '--secret-file', '/dev/null', '--batch-hold', 'soon'],
        /--batch-hold "soon": expected a whole number of milliseconds/,
      ],
      [
        ['serve', '--upstream', 'http://127.0.0.1:1', '--secret-file', '/dev/null', '--upstream-connections', '0'],
        /--upstream-connections "0": expected a positive whole number/,
      ],
      [['serve', '--upstream-connections', '2'], /--upstream-connections goes with --upstream/],
      [['serve', '--transport', 'fast'], /--transport "fast": expected auto, native, node/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ];
    for (const [args, message] of cases) {
      // Never bind the host's real port 113 should a case wrongly start.
      const result = await runCli(
        args.includes('--listen') || args[0] !== 'serve' ? args : [...args, '--listen', '127.0.0.1:0'],
      );
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('refuses bad NAT and container flags with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', '--nat-lookup', 'yes'], /--nat-lookup "yes": expected auto, on or off/],
      [
        ['serve', '--accept-forwarded-from', '10.0.0.1/8'],
        /--accept-forwarded-from "10.0.0.1\/8": host bits must be zero; expected a router's address or CIDR/,
      ],
      [
        ['serve', '--accept-forwarded-from', 'router.lan'],
        /--accept-forwarded-from "router.lan": "router.lan" is not an IP address/,
      ],
      [['serve', '--accept-forwarded-from', '10.0.0.0/33'], /prefix length must be 0..32/],
      [['serve', '--docker-socket', '/run/docker.sock', '--nat-lookup', 'off'], /--docker-socket needs the NAT lookup/],
      [
        ['serve', '--reply', 'x', '--accept-forwarded-from', '10.0.0.1'],
        /--accept-forwarded-from gives the policy facts; --reply answers without one/,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(args.includes('--listen') ? args : [...args, '--listen', '127.0.0.1:0']);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr, args.join(' ')).toMatch(message);
      expect(result.stderr.trim().split('\n'), args.join(' ')).toHaveLength(1);
    }
  });

  it('says what to do when the port is taken, with either transport', async () => {
    const serve = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'x'], READY);
    const port = listeningPort(serve.stdout());
    for (const transport of ['native', 'node']) {
      const result = await runCli(['serve', '--listen', `127.0.0.1:${port}`, '--reply', 'x', '--transport', transport]);
      expect(result.code, transport).toBe(2);
      expect(result.stderr, transport).toBe(
        `identgate: cannot listen on 127.0.0.1:${port}: the address is already in use (another identd running?)\n`,
      );
    }
  });

  it('falls back to node:net where the native transport is not built, and --transport native then exits 2 naming the missing addon', async () => {
    // A copy of the package whose build had no C compiler: dist/ without the transport addon.
    const copy = mkdtempSync(join(tmpdir(), 'identgate-nocc-'));
    try {
      cpSync(join(ROOT, 'dist'), join(copy, 'dist'), {
        recursive: true,
        filter: (path) => !path.endsWith('identgate-uv.node'),
      });
      copyFileSync(join(ROOT, 'package.json'), join(copy, 'package.json'));
      symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'));
      const cli = join(copy, 'dist/gateway/cli/main.js');
      const auto = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'x'], READY, { cli });
      expect(auto.stdout()).toMatch(/; transport: node\)/);
      auto.child.kill('SIGTERM');
      await auto.exited;
      const notice = auto
        .stderr()
        .split('\n')
        .find((line) => line.includes('using the node:net transport'));
      expect(JSON.parse(notice!)).toMatchObject({
        level: 'info',
        reason: expect.stringMatching(/identgate-uv\.node is neither built here .* nor prebuilt for linux-/),
      });
      const native = await runCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'x', '--transport', 'native'], {
        cli,
      });
      expect(native.code).toBe(2);
      expect(native.stderr.trim().split('\n')).toEqual([
        expect.stringMatching(
          /^identgate: the native transport is not available: identgate-uv\.node is neither built here \(.*\) nor prebuilt for linux-\S+ \(this package has no prebuilds\); `identgate build-addons` builds it with a C compiler$/,
        ),
      ]);
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('uses the native transport where it is built, and node:net with --transport node, and says which', async () => {
    const native = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'x'], READY);
    expect(native.stdout()).toMatch(/; transport: native\)/);
    const node = await startCli(['serve', '--listen', '127.0.0.1:0', '--reply', 'y', '--transport', 'node'], READY);
    expect(node.stdout()).toMatch(/; transport: node\)/);
    expect(await ident({ port: listeningPort(node.stdout()), serverPort: 1, clientPort: 2 })).toMatchObject({
      userId: 'y',
    });
  });

  it('documents every flag it accepts in --help', async () => {
    const result = await runCli(['serve', '--help']);
    expect(result.code).toBe(0);
    for (const flag of Object.keys(SERVE_FLAGS).map((name) => `--${name}`)) {
      expect(result.stdout).toContain(flag);
    }
  });

  it("shows a command's help for 'identgate help COMMAND', the same as COMMAND --help", async () => {
    const [viaHelp, viaFlag] = await Promise.all([runCli(['help', 'serve']), runCli(['serve', '--help'])]);
    expect(viaHelp.code).toBe(0);
    expect(viaHelp.stdout).toBe(viaFlag.stdout);
    expect((await runCli(['help', 'nope'])).stderr).toBe(
      'identgate: unknown command "nope": expected serve, query, worker, claim, audit, policy, explain, build-addons or completion (see \'identgate --help\')\n',
    );
  });

  it("points an unknown option to the command's --help, under the one identgate: prefix", async () => {
    const result = await runCli(['serve', '--nope']);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe("identgate: Unknown option '--nope' (see 'identgate serve --help')\n");
  });

  it('suggests a query that answers a user id with the example policy, and none where it would not', async () => {
    const example = await startCli(
      ['serve', '--listen', '127.0.0.1:0', '--policy', join(ROOT, 'examples/policy.json')],
      READY,
    );
    const reveal = await startCli(['serve', '--listen', '127.0.0.1:0', '--owner-lookup', 'off'], READY);
    try {
      const line = /^try: npx identgate (query .*)$/m.exec(example.stdout());
      expect(line).not.toBeNull();
      const asked = await runCli(line![1]!.split(' '));
      expect(asked.stdout).toMatch(/: USERID : [^:]+ : grimlock\r?\n$/);
      expect(reveal.stdout()).not.toMatch(/^try:/m);
    } finally {
      example.child.kill('SIGTERM');
      reveal.child.kill('SIGTERM');
      await Promise.all([example.exited, reveal.exited]);
    }
  });
});
