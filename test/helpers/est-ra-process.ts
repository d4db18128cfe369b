import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mustRun } from './run.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** est-ra serve in its own process, as systemd runs it, so a test can kill it for real. */
export interface EstRaProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything it printed so far (its JSON log lines). */
  output(): string;
  /** Sends the signal and waits for the process to be gone. */
  stop(signal: NodeJS.Signals): Promise<void>;
}

export function serveEstRa(configFile: string): Promise<EstRaProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let listening = false;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (listening) return;
      const url = /"message":"listening".*?"url":"([^"]+)"/.exec(output) ?? /"url":"([^"]+)".*?"message":"listening"/.exec(output);
      if (!url) return;
      listening = true;
      resolve({
        child,
        url: url[1]!,
        output: () => output,
        async stop(signal) {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          await exited;
        },
      });
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('exit', (code) => {
      if (!listening) reject(new Error(`est-ra serve exited ${code}: ${output}`));
    });
  });
}

/**
 * `est-ra init` as an admin runs it, with the demo's names and passcode
 * (`--demo-passcode --policy-name demo --profile-name demo`), for specs that
 * run est-ra as its own process. Resolves with config.yaml and the passcode.
 */
export async function initDemoState(stateDir: string, listen: { port?: number; host?: string } = {}): Promise<{ configFile: string; passcode: string }> {
  const demo = ['--demo-passcode', '--policy-name', 'demo', '--profile-name', 'demo'];
  const address = ['--port', String(listen.port ?? 0), ...(listen.host ? ['--host', listen.host] : [])];
  const printed = await mustRun(process.execPath, [CLI, 'init', '--state-dir', stateDir, ...address, ...demo]);
  return { configFile: join(stateDir, 'config.yaml'), passcode: /Demo passcode \(shown once, stored only as a hash\): (\S+)/.exec(printed)![1]! };
}
