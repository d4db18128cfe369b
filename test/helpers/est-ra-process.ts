import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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
