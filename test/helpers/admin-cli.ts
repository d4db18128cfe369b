import { fileURLToPath } from 'node:url';
import { mustRun, run, type RunResult } from './run.js';

export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * The admin CLI as a subprocess against a configuration: what the tests read
 * est-ra's state through (requests, certificates, passcodes, the audit
 * trail), as an admin or a script would, never SQL.
 */
export function adminCli(configFile: string): {
  run(...args: string[]): Promise<RunResult>;
  text(...args: string[]): Promise<string>;
  json<T = Record<string, unknown>>(...args: string[]): Promise<T[]>;
} {
  const argv = (args: string[]): string[] => [CLI, ...args, '--config', configFile];
  return {
    run: (...args) => run(process.execPath, argv(args)),
    text: (...args) => mustRun(process.execPath, argv(args)),
    async json<T>(...args: string[]): Promise<T[]> {
      const out = await mustRun(process.execPath, argv([...args, '--json']));
      return out
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as T);
    },
  };
}
