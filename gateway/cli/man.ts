/**
 * The manual pages, generated: identgate(8) from the command list and the flag tables (what `--help` prints),
 * identgate-policy(5) from docs/policy.md. `npm run docs:man` writes them to man/; a test checks they are current.
 */
import { COMMANDS } from './command-list.js';
import type { Flag, FlagTable } from './flags.js';

/** Text as roff reads it: backslashes escaped, no line starting with a control character. */
function roff(text: string): string {
  return text
    .replace(/\\/g, '\\e')
    .replace(/-/g, '\\-')
    .split('\n')
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join('\n');
}

function flagLabel(name: string, flag: Flag): string {
  const short = flag.short ? `\\fB\\-${flag.short}\\fR, ` : '';
  return `${short}\\fB\\-\\-${roff(name)}\\fR${flag.placeholder ? ` \\fI${roff(flag.placeholder)}\\fR` : ''}`;
}

function flagDefault(flag: Flag): string | undefined {
  return flag.defaultText ?? (flag.default === undefined ? undefined : String(flag.default));
}

function flagsRoff(table: FlagTable): string {
  const sections = new Map<string, string[]>();
  for (const [name, flag] of Object.entries(table)) {
    const shown = flagDefault(flag);
    const text = (flag.help.replace(/\n/g, ' ') + (shown === undefined ? '' : ` (default ${shown})`)).trim();
    const entry = `.TP\n${flagLabel(name, flag)}\n${roff(text)}`;
    sections.set(flag.section, [...(sections.get(flag.section) ?? []), entry]);
  }
  return [...sections]
    .map(([section, entries]) => `${sections.size > 1 ? `.PP\n\\fI${roff(section)}:\\fR\n` : ''}${entries.join('\n')}`)
    .join('\n');
}

/**
 * identgate(8): every command with its synopsis and every flag with its help and default.
 *
 * @example
 * writeFileSync('man/identgate.8', identgateManPage('0.1.0'));
 */
export function identgateManPage(version: string): string {
  const synopsis = COMMANDS.map((command) => `.B identgate ${roff(command.name)}\n${roff(command.synopsis)}\n.br`).join(
    '\n',
  );
  const commands = COMMANDS.map(
    (command) =>
      `.SS "identgate ${roff(command.name)}"\n${roff(command.summary[0]!.toUpperCase() + command.summary.slice(1))}.\n${
        command.subcommands
          ? `Subcommands: ${command.subcommands.map((sub) => `\\fB${roff(sub)}\\fR`).join(', ')}.\n`
          : ''
      }${flagsRoff(command.flags)}\n.TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nthis command's help`,
  ).join('\n');
  return `.\\" Generated from gateway/cli/command-list.ts and gateway/cli/flags.ts by \`npm run docs:man\`; edit there.
.TH IDENTGATE 8 "" "identgate ${roff(version)}" "System Administration"
.nh
.ad l
.SH NAME
identgate \\- RFC 1413 ident gateway with a central policy
.SH SYNOPSIS
${synopsis}
.B identgate help
[\\fICOMMAND\\fR] | \\fB\\-\\-help\\fR | \\fB\\-\\-version\\fR
.SH DESCRIPTION
\\fBidentgate serve\\fR answers RFC 1413 ident queries on port 113: with a fixed reply, with the policy
(identgate\\-policy(5)) evaluated in this process, or by asking a policy worker over HTTP (Cloudflare Workers,
\\fBwrangler dev\\fR, or \\fBidentgate worker\\fR). The other commands query ident servers, run the worker, talk
to a running gateway or worker, and rebuild the native parts of the package.
.PP
Usage errors print one line starting with \\fBidentgate:\\fR and exit with status 2.
.SH COMMANDS
${commands}
.SH SIGNALS
\\fBserve\\fR and \\fBworker\\fR reload the policy file on SIGHUP and stop gracefully on SIGTERM and SIGINT
(a second signal stops at once).
.SH FILES
.TP
.I /etc/identgate/
policy, secret and admin token files (docs/operations.md in the package)
.TP
.I prebuilds/TAG/
the native transport, sock_diag addon and helper prebuilt per platform, CPU and C library; \\fBidentgate
build\\-addons\\fR builds them for this host into the package's \\fIdist/\\fR, which is used first
.SH SEE ALSO
identgate\\-policy(5), oidentd(8), RFC 1413; docs/operations.md, docs/wire.md and docs/policy.md in the package
`;
}

/** Inline markdown to roff: `code` and **strong** bold, *emphasis* italic, [links](…) as their text. */
function inline(text: string): string {
  const code: string[] = [];
  const held = text.replace(/`([^`]+)`/g, (_, span: string) => `\u0000${code.push(span) - 1}\u0000`);
  return roff(held.replace(/\[([^\]]+)\]\([^)]+\)/g, '$1'))
    .replace(/\*\*([^*]+)\*\*/g, '\\fB$1\\fR')
    .replace(/\*([^*\s][^*]*)\*/g, '\\fI$1\\fR')
    .replace(/\u0000(\d+)\u0000/g, (_, index: string) => `\\fB${roff(code[Number(index)]!)}\\fR`);
}

/** The sections of docs/policy.md a policy author needs (not the engine's performance or how to extend it). */
const POLICY_SECTIONS_LEFT_OUT = ['Performance', 'Extending the format'];

/**
 * identgate-policy(5) from docs/policy.md: headings become sections, code blocks stay preformatted, lists and
 * tables become tagged paragraphs.
 *
 * @example
 * writeFileSync('man/identgate-policy.5', policyManPage(readFileSync('docs/policy.md', 'utf8'), '0.1.0'));
 */
export function policyManPage(markdown: string, version: string): string {
  const out: string[] = [];
  const lines = markdown.split('\n');
  let skipping = false;
  let paragraph: string[] = [];
  const flush = () => {
    if (paragraph.length > 0) out.push('.PP', inline(paragraph.join(' ')));
    paragraph = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heading = /^(#{1,3}) (.*)$/.exec(line);
    if (heading) {
      flush();
      const level = heading[1]!.length;
      if (level === 1) continue; // the title is the page's NAME
      if (level === 2) skipping = POLICY_SECTIONS_LEFT_OUT.includes(heading[2]!);
      const title = level === 2 ? heading[2]!.toUpperCase() : heading[2]!;
      if (!skipping) out.push(`${level === 2 ? '.SH' : '.SS'} "${inline(title)}"`);
      continue;
    }
    if (skipping) continue;
    if (line.startsWith('```')) {
      flush();
      const code: string[] = [];
      for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) code.push(roff(lines[i]!));
      out.push('.PP', '.RS 4', '.nf', ...code, '.fi', '.RE');
      continue;
    }
    if (line.startsWith('|')) {
      flush();
      const cells = line
        .split(/(?<!\\)\|/)
        .slice(1, -1)
        .map((cell) => cell.trim().replace(/\\\|/g, '|'));
      if (cells.every((cell) => /^:?-+:?$/.test(cell))) continue;
      const header = i > 0 && !lines[i - 1]!.startsWith('|');
      if (header) continue; // the column names; each row below says its first cell and the rest
      out.push('.TP', inline(cells[0]!), inline(cells.slice(1).filter(Boolean).join(' \u2014 ')));
      continue;
    }
    const item = /^(\s*)(?:[-*]|\d+\.) (.*)$/.exec(line);
    if (item) {
      flush();
      const text = [item[2]!];
      while (i + 1 < lines.length && /^\s{2,}\S/.test(lines[i + 1]!) && !/^\s*(?:[-*]|\d+\.) /.test(lines[i + 1]!))
        text.push(lines[++i]!.trim());
      out.push(`.IP \\(bu ${item[1]!.length > 0 ? 6 : 2}`, inline(text.join(' ')));
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    paragraph.push(line.trim());
  }
  flush();
  return `.\\" Generated from docs/policy.md by \`npm run docs:man\`; edit there.
.TH IDENTGATE\\-POLICY 5 "" "identgate ${roff(version)}" "File Formats"
.nh
.ad l
.SH NAME
identgate\\-policy \\- the identgate policy document (JSON)
.SH SYNOPSIS
.I policy.json
(\\fBidentgate serve \\-\\-policy\\fR \\fIFILE\\fR, \\fBidentgate worker \\-\\-policy\\fR \\fIFILE\\fR, \\fBPUT /v1/policy\\fR)
.SH DESCRIPTION
${out.join('\n')}
.SH SEE ALSO
identgate(8); \\fBidentgate policy check\\fR \\fIFILE\\fR validates a policy offline
`;
}
