import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned, type KeyAndCsr } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** A manufacturer's CA and the bootstrap certificates it put on devices, made with openssl as a factory would. */
async function manufacturerPki(dir: string): Promise<{ caFile: string; device: (name: string, eku: string) => Promise<KeyAndCsr & { certFile: string }> }> {
  const ca = await opensslSelfSigned(dir, 'mfg-ca', {
    subject: '/CN=Acme Manufacturing CA',
    days: 3650,
    addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
  });
  return {
    caFile: ca.certFile,
    device: (name, eku) =>
      opensslIssue(dir, name, {
        subject: `/CN=${name}/serialNumber=SN-${name}`,
        caFile: ca.certFile,
        caKeyFile: ca.keyFile,
        extensions: ['basicConstraints=CA:FALSE', `extendedKeyUsage=${eku}`],
      }),
  };
}

describe('bootstrap / manufacturer certificates and enroll_authentication', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let mfg: Awaited<ReturnType<typeof manufacturerPki>>;
  let bootstrap: KeyAndCsr & { certFile: string };
  let pinned: { certFile: string; keyFile: string };

  let factory: string;

  before(async () => {
    factory = mkdtempSync(join(tmpdir(), 'est-ra-factory-'));
    mfg = await manufacturerPki(factory);
    bootstrap = await mfg.device('bootstrap-1', 'clientAuth');
    pinned = await opensslSelfSigned(factory, 'pinned', { subject: '/CN=pinned-device' });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const policies = config.authentication_policies as Record<string, Record<string, unknown>>;
          policies.demo = { authentication_cas: [mfg.caFile], pinned_certificates: [pinned.certFile] };
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          demo.enroll_authentication = { methods: ['passcode', 'client_certificate'] };
          profiles['cert-only'] = { ...demo, default: false, labels: ['cert-only'], enroll_authentication: { methods: ['client_certificate'] } };
          profiles.both = {
            ...demo,
            default: false,
            labels: ['both'],
            enroll_authentication: { methods: ['passcode', 'client_certificate'], require_all: true },
          };
        }),
    });
  });
  after(async () => {
    await ra.close();
    rmSync(factory, { recursive: true, force: true });
  });

  const enroll = async (path: string, name: string, args: string[]): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(ra.dir, name);
    return curl(ra, path, [...args, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };
  const withBootstrap = (): string[] => ['--cert', bootstrap.certFile, '--key', bootstrap.keyFile];
  const withPasscode = (): string[] => ['--user', `:${ra.passcode}`];

  it('ok a manufacturer certificate alone enrolls, and the new certificate verifies', async () => {
    const answer = await enroll('/simpleenroll', 'boot-ok', withBootstrap());
    expect(answer.status, answer.body).to.equal(200);
    expect(await opensslVerify(ra, await certsFromP7(ra.dir, answer.body, 'boot-ok-cert'))).to.contain(': OK');
    const latest = await latestRequest(ra);
    expect(latest?.principal).to.include({ kind: 'certificate', subject: 'CN=bootstrap-1, 2.5.4.5=SN-bootstrap-1' });
  });

  it('ok a pinned self-signed certificate enrolls', async () => {
    expect((await enroll('/simpleenroll', 'boot-pinned', ['--cert', pinned.certFile, '--key', pinned.keyFile])).status).to.equal(200);
  });

  it('fail a certificate of another CA falls back to the passcode challenge (401) where passcodes are allowed', async () => {
    const stranger = await opensslCsr(ra.dir, 'stranger');
    const self = join(ra.dir, 'stranger.crt');
    await mustRun('openssl', ['x509', '-req', '-in', stranger.csrPemFile, '-key', stranger.keyFile, '-days', '1', '-out', self]);
    expect((await enroll('/simpleenroll', 'boot-stranger', ['--cert', self, '--key', stranger.keyFile])).status).to.equal(401);
  });

  it('fail cert-only profile: no certificate is 403 with the reason', async () => {
    const answer = await enroll('/cert-only/simpleenroll', 'boot-none', withPasscode());
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 simpleenroll requires a TLS client certificate of the authentication policy\n');
  });

  it('fail cert-only profile: a certificate without clientAuth is refused', async () => {
    const serverOnly = await mfg.device('bootstrap-server', 'serverAuth');
    const answer = await enroll('/cert-only/simpleenroll', 'boot-eku', ['--cert', serverOnly.certFile, '--key', serverOnly.keyFile]);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 TLS client certificate not accepted: it has no clientAuth extended key usage\n');
  });

  it('ok require_all: certificate and passcode together; either alone is refused', async () => {
    expect((await enroll('/both/simpleenroll', 'both-ok', [...withBootstrap(), ...withPasscode()])).status).to.equal(200);
    const latest = await latestRequest(ra);
    expect(latest?.principal).to.deep.include({ kind: 'passcode' });
    expect((latest?.principal as { certificate?: { subject: string } }).certificate?.subject).to.equal('CN=bootstrap-1, 2.5.4.5=SN-bootstrap-1');
    expect((await enroll('/both/simpleenroll', 'both-cert', withBootstrap())).status).to.equal(401);
    expect((await enroll('/both/simpleenroll', 'both-pass', withPasscode())).status).to.equal(403);
  });
});
