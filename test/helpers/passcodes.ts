import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun } from './run.js';
import type { TestEstRa } from './est-ra.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/**
 * `est-ra passcodes create --policy demo <args>` against a running est-ra, as
 * an admin types it; resolves with the passcode it printed once.
 */
export async function createPasscode(ra: TestEstRa, ...args: string[]): Promise<string> {
  const printed = await mustRun(process.execPath, [CLI, 'passcodes', 'create', '--policy', 'demo', ...args, '--config', join(ra.dir, 'config.yaml')]);
  return /\(shown once\): (\S+)$/m.exec(printed)![1]!;
}
