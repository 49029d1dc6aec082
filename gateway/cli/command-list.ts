/**
 * Every `identgate` command, once: the top-level `--help`, the unknown-command message, identgate(8) and the
 * bash completion are made from this list (each command's own `--help` is in commands.ts).
 */
import {
  AUDIT_SEARCH_FLAGS,
  BUILD_ADDONS_FLAGS,
  CLAIM_FLAGS,
  COMPLETION_FLAGS,
  EXPLAIN_FLAGS,
  POLICY_FLAGS,
  QUERY_FLAGS,
  SERVE_FLAGS,
  WORKER_FLAGS,
  type FlagTable,
} from './flags.js';

export interface CommandEntry {
  readonly name: string;
  /** What follows `identgate NAME` in a usage line. */
  readonly synopsis: string;
  /** What it does, in a few words. */
  readonly summary: string;
  /** Its words after the name (`claim add`, `audit search`), for completion. */
  readonly subcommands?: readonly string[];
  /** Whether its other words are file names (`policy check FILE`), for completion. */
  readonly fileArguments?: boolean;
  readonly flags: FlagTable;
}

export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'serve',
    synopsis: '[--listen ADDR:PORT]... [how to answer] [options]',
    summary: 'answer ident queries',
    flags: SERVE_FLAGS,
  },
  {
    name: 'query',
    synopsis: 'HOST SERVERPORT,CLIENTPORT [--port 113] [--timeout MS] [--json]',
    summary: 'ask an ident server who owns a connection',
    flags: QUERY_FLAGS,
  },
  {
    name: 'worker',
    synopsis: '--listen ADDR:PORT --secret-file FILE [--policy FILE] [--admin-token-file FILE]',
    summary: 'run the policy worker on Node',
    flags: WORKER_FLAGS,
  },
  {
    name: 'claim',
    synopsis: 'add|list|release|pending ...',
    summary: "tell the gateway which of an app's users a connection is for",
    subcommands: ['add', 'list', 'release', 'pending'],
    flags: CLAIM_FLAGS,
  },
  {
    name: 'audit',
    synopsis: 'search [filters] (--worker URL --admin-token-file FILE | --audit FILE)',
    summary: 'who was answered as what',
    subcommands: ['search'],
    flags: AUDIT_SEARCH_FLAGS,
  },
  {
    name: 'policy',
    synopsis: 'check FILE | get | put FILE [--worker URL --admin-token-file FILE]',
    summary: "validate a policy file offline, or get and replace a worker's policy",
    subcommands: ['check', 'get', 'put'],
    fileArguments: true,
    flags: POLICY_FLAGS,
  },
  {
    name: 'explain',
    synopsis: 'SERVERPORT,CLIENTPORT (--worker URL --admin-token-file FILE | --policy FILE) [question]',
    summary: 'which rule answers a query, and why the earlier ones do not',
    flags: EXPLAIN_FLAGS,
  },
  {
    name: 'build-addons',
    synopsis: '[--out DIR] [--cc CC]',
    summary: 'rebuild the native transport and the sock_diag addon and helper from their C sources',
    flags: BUILD_ADDONS_FLAGS,
  },
  {
    name: 'completion',
    synopsis: 'bash',
    summary: 'print the bash completion script',
    subcommands: ['bash'],
    flags: COMPLETION_FLAGS,
  },
];

export const COMMAND_NAMES: readonly string[] = COMMANDS.map((command) => command.name);

/** "serve, query, worker, claim, audit or build-addons" */
export function commandNamesText(): string {
  return `${COMMAND_NAMES.slice(0, -1).join(', ')} or ${COMMAND_NAMES.at(-1)}`;
}

/**
 * The top-level `identgate --help`.
 *
 * @example
 * usageText() // "identgate — RFC 1413 ident gateway ...\n\nUsage:\n  identgate serve [--listen ...]\n      answer ident queries\n..."
 */
export function usageText(): string {
  const lines = COMMANDS.map(
    (command) => `  identgate ${command.name} ${command.synopsis}\n      ${command.summary}`,
  ).join('\n');
  return `identgate — RFC 1413 ident gateway with a central policy

Usage:
${lines}
  identgate help [COMMAND] | --help | --version

Run 'identgate help COMMAND' or 'identgate COMMAND --help' for a command's options.
`;
}
