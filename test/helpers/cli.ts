/**
 * Runs the built `identgate` CLI (dist/gateway/cli/main.js, built by `npm test`'s
 * pretest) as a child process: one-shot commands with their exit status, and
 * long-running `serve`/`worker` processes that are killed after each test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const CLI = fileURLToPath(new URL('../../dist/gateway/cli/main.js', import.meta.url));
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `cli`: another build's dist/gateway/cli/main.js (default: this checkout's). */
export function runCli(
  args: string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv; cli?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(
          `identgate ${args.join(' ')} did not exit within ${options.timeoutMs ?? 15_000} ms; stderr: ${stderr}`,
        ),
      );
    }, options.timeoutMs ?? 15_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

export interface LongRunning {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
}

/** Starts a long-running command and resolves once its stdout matches `ready`. */
export async function startCli(
  args: string[],
  ready: RegExp,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cli?: string } = {},
): Promise<LongRunning> {
  const child = spawn(process.execPath, [options.cli ?? CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `identgate ${args.join(' ')} not ready within ${options.timeoutMs ?? 15_000} ms; stderr: ${stderr}`,
          ),
        ),
      options.timeoutMs ?? 15_000,
    );
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (ready.test(stdout)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      reject(new Error(`identgate ${args.join(' ')} exited with ${code}; stderr: ${stderr}`));
    });
  });
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

/** Port of the first "listening on ADDR:PORT" the CLI printed. */
export function listeningPort(stdout: string): number {
  const match =
    /listening on (?:\[[^\]]+\]|[^:\s]+):(\d+)/.exec(stdout) ?? /listening on http:\/\/[^\s]+:(\d+)/.exec(stdout);
  if (!match) throw new Error(`no port in ${JSON.stringify(stdout)}`);
  return Number(match[1]);
}
