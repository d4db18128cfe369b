import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';
import { initDemoState, serveEstRa, type EstRaProcess } from '../helpers/est-ra-process.js';
import { adminCli, ALL, type RequestJson } from '../helpers/admin-cli.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Every request, oldest first, as `est-ra requests list --json` gives it: the CLI reads a store a killed est-ra left as any other. */
async function readRequests(configFile: string): Promise<RequestJson[]> {
  return (await adminCli(configFile).json<RequestJson>('requests', 'list', ...ALL)).reverse();
}

/** How many requests are in each outcome. */
async function requestStates(configFile: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const request of await readRequests(configFile)) counts[request.outcome] = (counts[request.outcome] ?? 0) + 1;
  return counts;
}

describe("kill -9 between recording a request and the upstream's answer", function () {
  this.timeout(90_000);
  let dir: string;
  let upstream: Upstream;
  let estRa: EstRaProcess | undefined;

  after(async () => {
    await estRa?.stop('SIGKILL');
    await upstream.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("ok after a restart the request is forwarded again, issued once, and the device's retry gets it", async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-crash-'));
    const identity = await makeRaIdentity(dir);
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile, mode: 'hang' });
    const stateDir = join(dir, 'ra');
    const { configFile, passcode } = await initDemoState(stateDir);
    writeFileSync(
      configFile,
      editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
        profile.upstream = 'est';
        profile.est = {
          url: upstream.baseUrl,
          ra_pkcs12: identity.p12File,
          ra_pkcs12_passphrase: { file: join(dir, 'p12.pass') },
          trust_anchors: [upstream.rootCaFile],
          timeout_ms: 20_000,
        };
      }),
    );
    writeFileSync(join(dir, 'p12.pass'), `${identity.p12Passphrase}\n`, { mode: 0o600 });
    const rootCa = join(stateDir, 'pki', 'root-ca.crt');
    const device = await opensslCsr(dir, 'crash-device');
    const enroll = (url: string): Promise<{ code: number; stdout: string }> =>
      run('curl', [
        '-sS',
        '--cacert',
        rootCa,
        '--user',
        `:${passcode}`,
        '-H',
        'Content-Type: application/pkcs10',
        '--data-binary',
        `@${device.csrPemFile}`,
        '-w',
        '\n%{http_code}',
        `${url}/.well-known/est/simpleenroll`,
      ]);

    estRa = await serveEstRa(configFile);
    const inFlight = enroll(estRa.url);
    await eventually(async () => ((await requestStates(configFile)).received === 1 ? true : undefined));
    await estRa.stop('SIGKILL');
    expect((await inFlight).stdout).not.to.match(/\n200$/);
    expect(await requestStates(configFile)).to.deep.equal({ received: 1 });
    expect(await adminCli(configFile).text('store', 'check'), 'the store a killed est-ra left').to.equal('ok\n');

    await upstream.setMode('normal');
    estRa = await serveEstRa(configFile);
    await eventually(async () => ((await requestStates(configFile)).issued === 1 ? true : undefined));
    const retry = await enroll(estRa.url);
    expect(retry.stdout).to.match(/\n200$/);
    expect((await upstream.stats()).issued).to.equal(1);
    // It was in flight when est-ra died: the upstream may have issued it then too. Recorded, and logged by id.
    const [request] = await readRequests(configFile);
    expect(request).to.include({ outcome: 'issued', possibly_issued_twice_upstream: true });
    const warned = estRa
      .output()
      .split('\n')
      .filter((line) => line.includes('the upstream may hold a second certificate'))
      .map((line) => JSON.parse(line) as { id: string; serial?: string });
    expect(warned.map((line) => line.id)).to.deep.equal([request!.id, request!.id]);
    expect(warned[1]!.serial).to.equal(request!.serial);

    // Once recorded as issued, a request is final: another restart forwards nothing.
    await estRa.stop('SIGKILL');
    estRa = await serveEstRa(configFile);
    expect((await enroll(estRa.url)).stdout).to.match(/\n200$/);
    expect((await upstream.stats()).issued).to.equal(1);
    expect(await requestStates(configFile)).to.deep.equal({ issued: 1 });

    // Started while the upstream is down, est-ra serves /cacerts from its store.
    await upstream.stop();
    await estRa.stop('SIGTERM');
    estRa = await serveEstRa(configFile);
    const cacerts = await run('curl', ['-sS', '--cacert', rootCa, '-o', '/dev/null', '-w', '%{http_code}', `${estRa.url}/.well-known/est/cacerts`]);
    expect(cacerts.stdout).to.equal('200');
  });
});

describe('RA identity problems are start-up errors that name the profile', function () {
  this.timeout(30_000);

  it('fail a wrong PKCS#12 passphrase stops est-ra serve with a one-line reason', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'est-ra-p12-'));
    try {
      const identity = await makeRaIdentity(dir);
      const stateDir = join(dir, 'ra');
      const { configFile } = await initDemoState(stateDir);
      writeFileSync(join(dir, 'wrong.pass'), 'not-the-passphrase\n');
      writeFileSync(
        configFile,
        editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
          profile.upstream = 'est';
          profile.est = {
            url: 'https://127.0.0.1:1/.well-known/est',
            ra_pkcs12: identity.p12File,
            ra_pkcs12_passphrase: { file: join(dir, 'wrong.pass') },
            trust_anchors: [identity.caFile],
          };
        }),
      );
      const result = await run(process.execPath, [CLI, 'serve', '--config', configFile]);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(/^est-ra: profiles\.demo\.est: cannot load the RA identity: .*passphrase.*\n$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
