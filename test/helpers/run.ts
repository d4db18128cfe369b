import { execFile } from 'node:child_process';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a real client (curl, openssl, pki) as a subprocess without blocking
 * the event loop, so an est-ra running in this process keeps answering.
 */
export function run(command: string, args: readonly string[], options: { cwd?: string; input?: string | Buffer } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { cwd: options.cwd, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') {
        // Not an exit status: the program could not be started at all.
        reject(new Error(`${command}: ${error.message}`));
        return;
      }
      resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** Runs a shell line, for commands copied exactly as an admin types them. */
export function sh(line: string, cwd: string): Promise<RunResult> {
  return run('bash', ['-euo', 'pipefail', '-c', line], { cwd });
}

/** Like run, but fails the test with the client's own output when it exits non-zero. */
export async function mustRun(command: string, args: readonly string[], options: { cwd?: string; input?: string | Buffer } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.code}\n${result.stderr}${result.stdout}`);
  return result.stdout;
}
