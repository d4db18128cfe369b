import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './net.js';
import { eventually } from './wait.js';

/** A backend server HAProxy forwards to, with the port its health check asks /readyz on. */
export interface HaproxyBackend {
  readonly name: string;
  readonly port: number;
  /** est-ra's ops listener (/readyz); omitted: a TCP connect check on `port`, which with `checkSendProxy` opens with a LOCAL header. */
  readonly checkPort?: number;
}

export interface TestHaproxy {
  readonly port: number;
  readonly configText: string;
  /** Each server's state as HAProxy's stats socket says (`UP`, `DOWN`, ...). */
  serverStates(): Promise<Record<string, string>>;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Debian's HAProxy (2.6 on Debian 12) in its own process (`haproxy -f cfg -db`,
 * no service): TCP mode, round robin, PROXY protocol v2 to each server, the
 * configuration docs/cluster.md shows. Resolves once every server is UP.
 */
export async function startHaproxy(
  backends: readonly HaproxyBackend[],
  /** `source`: the address HAProxy connects to the servers from (est-ra's listen.proxy_protocol.from). */
  /** `ipv6`: the frontend also listens on [::1], the same port. */
  options: { readonly checkSendProxy?: boolean; readonly source?: string; readonly ipv6?: boolean } = {},
): Promise<TestHaproxy> {
  const dir = mkdtempSync(join(tmpdir(), 'est-ra-haproxy-'));
  const port = await freePort();
  const stats = join(dir, 'stats.sock');
  const httpCheck = backends.some((b) => b.checkPort !== undefined);
  const configText = [
    'global',
    `  stats socket ${stats} mode 600 level admin`,
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    // A connection refused by a dead server is tried again on another one.
    '  retries 3',
    '  option redispatch',
    'frontend est',
    `  bind 127.0.0.1:${port}`,
    ...(options.ipv6 ? [`  bind [::1]:${port}`] : []),
    '  default_backend est_ra_nodes',
    'backend est_ra_nodes',
    '  balance roundrobin',
    ...(httpCheck ? ['  option httpchk', '  http-check send meth GET uri /readyz', '  http-check expect status 200'] : []),
    '  default-server inter 300ms fall 2 rise 1',
    ...backends.map(
      (b) =>
        `  server ${b.name} 127.0.0.1:${b.port} send-proxy-v2 check${b.checkPort !== undefined ? ` port ${b.checkPort}` : ''}${options.checkSendProxy ? ' check-send-proxy' : ''}${options.source ? ` source ${options.source}` : ''}`,
    ),
    '',
  ].join('\n');
  const configFile = join(dir, 'haproxy.cfg');
  writeFileSync(configFile, configText);
  const child = spawn('haproxy', ['-f', configFile, '-db'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const serverStates = async (): Promise<Record<string, string>> => {
    const text = await new Promise<string>((resolve, reject) => {
      let answer = '';
      const socket = connect(stats, () => socket.end('show stat\n'));
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString('utf8')));
      socket.on('end', () => resolve(answer));
      socket.on('error', reject);
    });
    // CSV: pxname,svname,...,status (the 18th column).
    const states: Record<string, string> = {};
    for (const line of text.split('\n').filter((l) => l.startsWith('est_ra_nodes,'))) {
      const fields = line.split(',');
      if (fields[1] !== 'BACKEND') states[fields[1]!] = fields[17]!;
    }
    return states;
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited ${child.exitCode}: ${output}`);
      const states = await serverStates().catch((): Record<string, string> => ({}));
      return backends.every((b) => states[b.name] === 'UP') ? true : undefined;
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { port, configText, serverStates, output: () => output, stop };
}
