// Rewrites the serve and worker flag tables in docs/operations.md from gateway/cli/flags.ts (the built copy in dist/).
import { readFileSync, writeFileSync } from 'node:fs';
import { withServeFlagTable } from '../../dist/gateway/cli/flags.js';

const path = new URL('../../docs/operations.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withServeFlagTable(before);
if (after !== before) writeFileSync(path, after);
console.log(
  after === before ? 'docs/operations.md: flag tables unchanged' : 'docs/operations.md: flag tables rewritten',
);
