import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { makeRaIdentity, startUpstream, type Upstream } from '../helpers/upstream.js';
import { editProfile } from '../helpers/config.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { adminCli, type RequestJson } from '../helpers/admin-cli.js';
import { mustRun, run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';
import { initDemoState, serveEstRa, type EstRaProcess } from '../helpers/est-ra-process.js';

/**
 * An approval is state in the store, not in the process: a request waiting
 * for one survives a stop (SIGTERM) and a crash (kill -9), and an approval
 * given while est-ra is down is acted on when it starts.
 */
describe('approvals across restarts: est-ra serve stopped and killed while a request waits', function () {
  this.timeout(120_000);
  let dir: string;
  let upstream: Upstream | undefined;
  let estRa: EstRaProcess | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-approvals-'));
  });
  afterEach(async () => {
    await estRa?.stop('SIGKILL');
    await upstream?.close();
    upstream = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  /** curl as the device: the status, the body and the request id est-ra gave. */
  const enroll = async (url: string, rootCa: string, passcode: string, device: KeyAndCsr): Promise<{ status: number; body: string; id?: string }> => {
    const headers = join(dir, 'headers.txt');
    const args = ['-sS', '--cacert', rootCa, '--user', `:${passcode}`, '-H', 'Content-Type: application/pkcs10', '--data-binary', `@${device.csrPemFile}`];
    const result = await run('curl', [...args, '-D', headers, '-w', '\n%{http_code}', `${url}/.well-known/est/simpleenroll`]);
    const cut = result.stdout.lastIndexOf('\n');
    const id = /^X-Request-Id: *(\S+)/im.exec(readFileSync(headers, 'utf8'))?.[1];
    return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut), ...(id ? { id } : {}) };
  };

  /** The certificate in a certs-only answer, checked by openssl against est-ra's CAs (here: the upstream's or the local root). */
  const verify = async (body: string, caFile: string, untrusted?: string): Promise<string> => {
    writeFileSync(join(dir, 'answer.p7'), body);
    const pem = join(dir, 'answer.pem');
    await mustRun('bash', ['-euo', 'pipefail', '-c', `openssl base64 -d -in answer.p7 | openssl pkcs7 -inform DER -print_certs -out ${pem}`], { cwd: dir });
    return mustRun('openssl', ['verify', '-CAfile', caFile, ...(untrusted ? ['-untrusted', untrusted] : []), pem]);
  };

  it('ok kill -9 while pending under an upstream profile: started again, approved, forwarded once, and the retry gets the certificate', async () => {
    const identity = await makeRaIdentity(dir);
    upstream = await startUpstream({ dir: join(dir, 'upstream'), clientCaFile: identity.caFile });
    const stateDir = join(dir, 'ra');
    const { configFile, passcode } = await initDemoState(stateDir);
    writeFileSync(join(dir, 'p12.pass'), `${identity.p12Passphrase}\n`, { mode: 0o600 });
    writeFileSync(
      configFile,
      editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
        profile.upstream = 'est';
        profile.est = {
          url: upstream!.baseUrl,
          ra_pkcs12: identity.p12File,
          ra_pkcs12_passphrase: { file: join(dir, 'p12.pass') },
          trust_anchors: [upstream!.rootCaFile],
        };
        profile.require_approval_for_enroll = true;
      }),
    );
    const rootCa = join(stateDir, 'pki', 'root-ca.crt');
    const cli = adminCli(configFile);
    const device = await opensslCsr(dir, 'restart-upstream');

    estRa = await serveEstRa(configFile);
    const first = await enroll(estRa.url, rootCa, passcode, device);
    expect(first.status).to.equal(202);
    await estRa.stop('SIGKILL');
    expect((await upstream.stats()).requests.simpleenroll).to.equal(0);

    estRa = await serveEstRa(configFile);
    // Still waiting after the crash: not forwarded by the restart (it was never in flight).
    expect((await enroll(estRa.url, rootCa, passcode, device)).status).to.equal(202);
    expect((await cli.json<{ id: string; state: string }>('approvals', 'list')).map((a) => [a.id, a.state])).to.deep.equal([[first.id, 'pending']]);
    expect((await upstream.stats()).requests.simpleenroll).to.equal(0);

    await cli.text('approvals', 'approve', first.id!, '--by', 'carol');
    await eventually(async () => ((await cli.json<RequestJson>('requests', 'show', first.id!))[0]?.outcome === 'issued' ? true : undefined));
    const retry = await enroll(estRa.url, rootCa, passcode, device);
    expect(retry.status).to.equal(200);
    expect(await verify(retry.body, upstream.rootCaFile, upstream.issuingCaFile)).to.contain(': OK');
    const stats = await upstream.stats();
    expect([stats.requests.simpleenroll, stats.issued]).to.deep.equal([1, 1]);
  });

  it('ok SIGTERM while pending, approved while est-ra is down: the next start issues it and the retry gets the certificate', async () => {
    const stateDir = join(dir, 'ra');
    const { configFile, passcode } = await initDemoState(stateDir);
    writeFileSync(
      configFile,
      editProfile(readFileSync(configFile, 'utf8'), 'demo', (profile) => {
        profile.require_approval_for_enroll = true;
      }),
    );
    const rootCa = join(stateDir, 'pki', 'root-ca.crt');
    const cli = adminCli(configFile);
    const device = await opensslCsr(dir, 'restart-local');

    estRa = await serveEstRa(configFile);
    const first = await enroll(estRa.url, rootCa, passcode, device);
    expect(first.status).to.equal(202);
    await estRa.stop('SIGTERM');

    expect(await cli.text('approvals', 'approve', first.id!, '--by', 'dave')).to.contain(`Request ${first.id!} approved by dave`);
    estRa = await serveEstRa(configFile);
    await eventually(async () => ((await cli.json<RequestJson>('requests', 'show', first.id!))[0]?.outcome === 'issued' ? true : undefined));
    const retry = await enroll(estRa.url, rootCa, passcode, device);
    expect(retry.status).to.equal(200);
    expect(await verify(retry.body, rootCa, join(stateDir, 'pki', 'issuing-ca.crt'))).to.contain(': OK');
    const [approval] = await cli.json<{ state: string; decided_by: string; request_outcome: string }>('approvals', 'show', first.id!);
    expect(approval).to.include({ state: 'approved', decided_by: 'dave', request_outcome: 'issued' });
  });
});
