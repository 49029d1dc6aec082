/**
 * `identgate completion bash`: a bash completion script made from the command list and the flag tables, so that
 * it offers exactly the commands and flags `--help` documents; file names after a flag whose value is a FILE,
 * PATH or DIR.
 */
import { COMMANDS } from './command-list.js';
import type { FlagTable } from './flags.js';

/** The placeholders whose values are paths. */
const PATH_VALUES = new Set(['FILE', 'PATH', 'DIR']);

function words(list: readonly string[]): string {
  return list.join(' ');
}

function flagWords(table: FlagTable): { flags: string[]; paths: string[]; valued: string[] } {
  const flags: string[] = ['--help'];
  const paths: string[] = [];
  const valued: string[] = [];
  for (const [name, flag] of Object.entries(table)) {
    flags.push(`--${name}`);
    if (flag.type !== 'string') continue;
    valued.push(`--${name}`);
    if (flag.short) valued.push(`-${flag.short}`);
    if (flag.placeholder !== undefined && PATH_VALUES.has(flag.placeholder)) {
      paths.push(`--${name}`);
      if (flag.short) paths.push(`-${flag.short}`);
    }
  }
  return { flags, paths, valued };
}

/**
 * The script: `source <(identgate completion bash)`, or save it as
 * /usr/share/bash-completion/completions/identgate.
 *
 * @example
 * process.stdout.write(bashCompletion());
 */
export function bashCompletion(): string {
  const cases = COMMANDS.map((command) => {
    const { flags, paths, valued } = flagWords(command.flags);
    const lines = [
      `    ${command.name})`,
      `      flags='${words(flags)}'`,
      `      paths='${words(paths)}'`,
      `      valued='${words(valued)}'`,
      `      subcommands='${words(command.subcommands ?? [])}'`,
      `      files='${command.fileArguments ? 'yes' : ''}'`,
      '      ;;',
    ];
    return lines.join('\n');
  }).join('\n');
  return `# bash completion for identgate, generated from its flag table by \`identgate completion bash\`
_identgate() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
  local commands='${words(COMMANDS.map((command) => command.name))} help'
  COMPREPLY=()
  if [[ $COMP_CWORD -eq 1 ]]; then
    COMPREPLY=($(compgen -W "$commands --help --version" -- "$cur"))
    return
  fi
  local flags='' paths='' valued='' subcommands='' files=''
  case \${COMP_WORDS[1]} in
${cases}
    help)
      [[ $COMP_CWORD -eq 2 ]] && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
      return
      ;;
    *) return ;;
  esac
  if [[ " $paths " == *" $prev "* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    compopt -o filenames 2>/dev/null
    return
  fi
  [[ " $valued " == *" $prev "* ]] && return
  if [[ $COMP_CWORD -eq 2 && -n $subcommands && $cur != -* ]]; then
    COMPREPLY=($(compgen -W "$subcommands" -- "$cur"))
    return
  fi
  if [[ -n $files && $cur != -* ]]; then
    COMPREPLY=($(compgen -f -- "$cur"))
    compopt -o filenames 2>/dev/null
    return
  fi
  COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -F _identgate identgate
`;
}
