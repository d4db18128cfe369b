import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslSelfSigned } from '../helpers/csr.js';
import { freePort } from '../helpers/net.js';
import { initDemoState } from '../helpers/est-ra-process.js';
import { run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

type LogLine = Record<string, unknown> & { message?: string };

/** `systemctl reload est-ra` is `kill -HUP`: the same process goes on serving, with the new configuration. */
describe('est-ra serve reloads its configuration on SIGHUP', function () {
  this.timeout(60_000);
  let dir: string;
  let configFile: string;
  let port: number;
  let child: ChildProcess;
  let passcode: string;
  const lines: LogLine[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-reload-'));
    port = await freePort();
    ({ passcode } = await initDemoState(dir, { port, host: '127.0.0.1' }));
    configFile = join(dir, 'config.yaml');
    child = spawn(process.execPath, [CLI, 'serve', '--config', configFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    let rest = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      const text = rest + chunk.toString('utf8');
      const complete = text.split('\n');
      rest = complete.pop() ?? '';
      for (const line of complete) if (line.trim() !== '') lines.push(JSON.parse(line) as LogLine);
    });
    await eventually(() => lines.find((l) => l.message === 'listening'));
  });
  after(() => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  const cacerts = async (label: string, caFile = join(dir, 'pki', 'root-ca.crt')): Promise<string> =>
    (await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', caFile, `https://127.0.0.1:${port}/.well-known/est/${label}cacerts`]))
      .stdout;
  const editAndHangUp = async (edit: (config: Record<string, unknown>) => void, expect: string): Promise<LogLine> => {
    writeFileSync(configFile, editConfig(readFileSync(configFile, 'utf8'), edit));
    const seen = lines.length;
    child.kill('SIGHUP');
    return eventually(() => lines.slice(seen).find((l) => l.message?.startsWith(expect)));
  };
  const profiles = (config: Record<string, unknown>): Record<string, Record<string, unknown>> => config.profiles as Record<string, Record<string, unknown>>;

  it('ok a profile added to the file answers after SIGHUP, in the same process', async () => {
    expect(await cacerts('line-9/')).to.equal('404');
    const reloaded = await editAndHangUp((config) => {
      profiles(config)['line-9'] = { ...profiles(config).demo, default: false, labels: ['line-9'] };
    }, 'configuration reloaded');
    expect(reloaded.profiles).to.deep.equal(['demo', 'line-9']);
    expect(await cacerts('line-9/')).to.equal('200');
    const csr = await opensslCsr(dir, 'reload-device');
    const enrolled = await run('curl', [
      '-sS',
      '-o',
      '/dev/null',
      '-w',
      '%{http_code}',
      '--cacert',
      join(dir, 'pki', 'root-ca.crt'),
      '--user',
      `:${passcode}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${csr.csrPemFile}`,
      `https://127.0.0.1:${port}/.well-known/est/line-9/simpleenroll`,
    ]);
    expect(enrolled.stdout).to.equal('200');
    expect(child.exitCode).to.equal(null);
  });

  it('fail a broken file is logged with the field, and the running configuration stays', async () => {
    const good = readFileSync(configFile, 'utf8');
    const failed = await editAndHangUp((config) => {
      (profiles(config).demo!.validity as Record<string, unknown>).duration_value = -1;
    }, 'reload failed');
    expect(failed.error).to.contain('profiles.demo.validity.duration_value: must be a positive integer');
    expect(await cacerts('line-9/')).to.equal('200');
    expect(await cacerts('')).to.equal('200');
    writeFileSync(configFile, good);
  });

  it('ok a new TLS certificate is served after SIGHUP; a listener change is reported as needing a restart', async () => {
    const rotated = await opensslSelfSigned(dir, 'rotated-tls', { subject: '/CN=est-ra rotated', addext: ['subjectAltName=IP:127.0.0.1'] });
    const reloaded = await editAndHangUp((config) => {
      config.tls = { ...(config.tls as Record<string, unknown>), certificate: rotated.certFile, key: rotated.keyFile };
      (config.listen as Record<string, unknown>).port = port + 1;
    }, 'configuration reloaded');
    expect(reloaded.restart_needed).to.deep.equal(['listen']);
    expect(await cacerts('', rotated.certFile)).to.equal('200');
    // The old chain no longer verifies: curl fails the handshake (no HTTP status).
    expect(await cacerts('')).to.equal('000');
  });
});
