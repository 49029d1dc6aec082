// Writes man/identgate.8 and man/identgate-policy.5 from the built gateway/cli/man.ts (dist/), the command list,
// the flag tables and docs/policy.md; test/gateway/cli/man.test.ts fails when they are stale.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { identgateManPage, policyManPage } from '../../dist/gateway/cli/man.js';
import { identgateVersion } from '../../dist/gateway/version.js';

const root = new URL('../../', import.meta.url);
mkdirSync(new URL('man/', root), { recursive: true });
const version = identgateVersion();
const pages = {
  'man/identgate.8': identgateManPage(version),
  'man/identgate-policy.5': policyManPage(readFileSync(new URL('docs/policy.md', root), 'utf8'), version),
};
for (const [path, text] of Object.entries(pages)) {
  const url = new URL(path, root);
  let before = '';
  try {
    before = readFileSync(url, 'utf8');
  } catch {
    // not written yet
  }
  if (before !== text) writeFileSync(url, text);
  console.log(`${path}: ${before === text ? 'unchanged' : 'rewritten'}`);
}
