import { createServer, type Server } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { makeRevocationCa, type IssuedCert, type OcspResponder, type RevocationCa } from '../helpers/revocation-pki.js';
import { freePort } from '../helpers/net.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Bootstrap certificates checked against a real `openssl ocsp` responder and real `openssl ca -gencrl` CRLs. */
describe('revocation of bootstrap certificates: OCSP and CRL, hard_fail and soft_fail', function () {
  this.timeout(90_000);
  let dir: string;
  let ca: RevocationCa;
  let responder: OcspResponder;
  let crlServer: Server;
  let crlBody = Buffer.alloc(0);
  let ra: TestEstRa;
  const certs: Record<string, IssuedCert> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-revocation-'));
    const ocspPort = await freePort();
    crlServer = createServer((_req, res) => res.end(crlBody)).listen(0, '127.0.0.1');
    await new Promise((resolve) => crlServer.once('listening', resolve));
    const crlUrl = `http://127.0.0.1:${(crlServer.address() as AddressInfo).port}/factory.crl`;
    ca = await makeRevocationCa(join(dir, 'factory'), { crlDistributionPoint: crlUrl, ocspUrl: `http://127.0.0.1:${ocspPort}` });
    for (const name of ['good', 'revoked', 'unreachable', 'crl-good', 'crl-revoked', 'stale']) certs[name] = await ca.issue(name, { refreshResponders: false });
    await ca.revoke(certs.revoked!.certFile, { refreshResponders: false });
    await ca.revoke(certs['crl-revoked']!.certFile, { refreshResponders: false });
    crlBody = readFileSync((await ca.writeCrl()).derFile);
    const stale = await ca.writeCrl({ lastUpdateAgoHours: 3, hours: 1 });
    responder = await ca.startOcspResponder({ port: ocspPort });

    const policy = (revocation: Record<string, unknown>): Record<string, unknown> => ({ authentication_cas: [ca.caFile], revocation });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.authentication_policies = {
            demo: {},
            'ocsp-hard': policy({ mode: 'hard_fail', ocsp: true, use_crl_distribution_points: false }),
            'ocsp-soft': policy({ mode: 'soft_fail', ocsp: true, use_crl_distribution_points: false }),
            'crl-hard': policy({ mode: 'hard_fail', ocsp: false, use_crl_distribution_points: true }),
            'stale-crl': policy({ mode: 'hard_fail', ocsp: false, use_crl_distribution_points: false, crl_files: [stale.pemFile] }),
          };
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          for (const name of ['ocsp-hard', 'ocsp-soft', 'crl-hard', 'stale-crl']) {
            profiles[name] = {
              ...demo,
              default: false,
              labels: [name],
              authentication_policy: name,
              enroll_authentication: { methods: ['client_certificate'] },
            };
          }
        }),
    });
  });
  after(async () => {
    await ra.close();
    await responder.stop().catch(() => undefined);
    crlServer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const enroll = async (profile: string, cert: IssuedCert): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(ra.dir, `${profile}-${Math.random().toString(16).slice(2)}`);
    return curl(ra, `/${profile}/simpleenroll`, ['--cert', cert.certFile, '--key', cert.keyFile, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };

  it('ok OCSP good: enrolled, and the decision is recorded with the request', async () => {
    expect((await enroll('ocsp-hard', certs.good!)).status).to.equal(200);
    const latest = await latestRequest(ra);
    expect((latest?.principal as { revocation?: string }).revocation).to.equal(`good (OCSP ${responder.url})`);
  });

  it('fail OCSP revoked: 403 with the source', async () => {
    const answer = await enroll('ocsp-hard', certs.revoked!);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(`403 TLS client certificate not accepted: certificate revoked (OCSP ${responder.url})\n`);
  });

  it('fail OCSP unknown: a certificate the responder has never heard of', async () => {
    // Signed with the CA's key by plain `openssl x509 -req`, so the CA's index.txt never saw it.
    const stranger = await opensslIssue(dir, 'not-in-index', {
      caFile: ca.caFile,
      caKeyFile: ca.caKeyFile,
      extensions: ['basicConstraints=CA:FALSE'],
      days: 1,
    });
    const answer = await enroll('ocsp-hard', { ...stranger, serial: '' });
    expect(answer.status).to.equal(403);
    expect(answer.body).to.contain('revocation status unknown');
  });

  it('fail hard_fail with the responder down; ok soft_fail lets it through, logged and counted', async () => {
    await responder.kill();
    try {
      const hard = await enroll('ocsp-hard', certs.unreachable!);
      expect(hard.status).to.equal(403);
      expect(hard.body).to.match(/^403 TLS client certificate not accepted: revocation status unknown: OCSP http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
      expect((await enroll('ocsp-soft', certs.unreachable!)).status).to.equal(200);
      const latest = await latestRequest(ra);
      expect((latest?.principal as { revocation?: string }).revocation).to.match(/^unknown, allowed by soft_fail: OCSP/);
      expect(ra.logs.some((line) => line.includes('revocation status unknown; allowed by soft_fail'))).to.equal(true);
    } finally {
      await responder.restart();
    }
  });

  it('ok CRL from the distribution point: good passes, revoked is refused', async () => {
    expect((await enroll('crl-hard', certs['crl-good']!)).status).to.equal(200);
    const answer = await enroll('crl-hard', certs['crl-revoked']!);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.match(/^403 TLS client certificate not accepted: certificate revoked \(CRL http:\/\/127\.0\.0\.1:\d+\/factory\.crl\)\n$/);
  });

  it('fail a stale CRL (nextUpdate passed) makes the status unknown: 403 in hard_fail', async () => {
    const answer = await enroll('stale-crl', certs.stale!);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.match(/revocation status unknown: CRL .*: stale: nextUpdate/);
  });
});
