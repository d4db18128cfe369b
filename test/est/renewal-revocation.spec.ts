import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { certsFromP7, curl, strongswanPki, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { freePort } from '../helpers/net.js';
import { makeRevocationCa, type IssuedCert, type OcspResponder, type RevocationCa } from '../helpers/revocation-pki.js';
import { latestRefusal as latestRefusalOf, latestRequest, type RefusalJson, type RequestJson } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * Renewal of certificates that were really revoked: the profile's CA is an
 * `openssl ca` CA, so `openssl ca -revoke` and a real `openssl ocsp`
 * responder speak for the very certificates est-ra renews. The default
 * profile (the bare path, which strongSwan pki always uses) refuses revoked
 * certificates; the `lenient` one has renew_revoked_cert: true.
 */
describe('renewal with revocation checking: renew_revoked_cert, curl and strongSwan pki --est --cert/--key', function () {
  this.timeout(90_000);
  let dir: string;
  let ca: RevocationCa;
  let responder: OcspResponder;
  let ra: TestEstRa;
  const certs: Record<string, IssuedCert> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-renew-revoked-'));
    const ocspPort = await freePort();
    ca = await makeRevocationCa(join(dir, 'plant'), { ocspUrl: `http://127.0.0.1:${ocspPort}`, commonName: 'Plant Issuing CA' });
    for (const name of ['good', 'revoked', 'ss-good', 'ss-revoked', 'unchecked']) certs[name] = await ca.issue(name, { refreshResponders: false });
    for (const name of ['revoked', 'ss-revoked']) await ca.revoke(certs[name]!.certFile, { reason: 'keyCompromise', refreshResponders: false });
    responder = await ca.startOcspResponder({ port: ocspPort });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          // The plant CA issues these certificates itself (openssl ca), so the policy must list it to renew them.
          config.authentication_policies = {
            plant: { renewal_cas: [ca.caFile], revocation: { mode: 'hard_fail', ocsp: true, use_crl_distribution_points: false } },
          };
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const plant = {
            ...profiles.demo,
            authentication_policy: 'plant',
            local_ca: { certificate: ca.caFile, key: ca.caKeyFile, chain: [] },
          };
          config.profiles = {
            strict: { ...plant, default: true, labels: ['strict'], renewal_settings: { renew_revoked_cert: false } },
            lenient: { ...plant, default: false, labels: ['lenient'], renewal_settings: { renew_revoked_cert: true } },
          };
        }),
    });
  });
  after(async () => {
    await ra.close();
    await responder.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  /** A renewal CSR with the certificate's own subject (RFC 7030 §4.2.2) and a new key. */
  const renewalCsr = async (cert: IssuedCert, name: string) => {
    const subject = (await x509Field(cert.certFile, '-subject')).replace(/^subject=/, '/').replace(/,/g, '/');
    return opensslCsr(ra.dir, name, { subject });
  };
  const reenroll = async (profile: string, cert: IssuedCert): Promise<{ status: number; body: string }> => {
    const csr = await renewalCsr(cert, `rr-${Math.random().toString(16).slice(2)}`);
    return curl(ra, `/${profile}/simplereenroll`, ['--cert', cert.certFile, '--key', cert.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };
  const verify = (certFile: string): Promise<string> => mustRun('openssl', ['verify', '-CAfile', ca.caFile, certFile]);
  const latest = async (): Promise<RequestJson> => (await latestRequest(ra))!;
  /** A certificate refused at authentication is counted, not stored as a request (issue #10). */
  const latestRefusal = async (): Promise<RefusalJson | undefined> => latestRefusalOf(ra);
  const pkiRenew = async (cert: IssuedCert, name: string) => {
    const csr = await renewalCsr(cert, name);
    return strongswanPki(ra, ['--est', '--in', csr.csrDerFile, '--cert', cert.certFile, '--key', cert.keyFile, '--outform', 'pem']);
  };

  it('ok a good certificate renews; the OCSP answer is recorded with the request', async () => {
    const answer = await reenroll('strict', certs.good!);
    expect(answer.status, answer.body).to.equal(200);
    const renewed = await certsFromP7(ra.dir, answer.body, 'rr-good');
    expect(await verify(renewed)).to.contain(': OK');
    expect(await x509Field(renewed, '-subject')).to.equal('subject=CN=good');
    expect((await latest()).principal).to.deep.include({ kind: 'certificate', subject: 'CN=good', revocation: `good (OCSP ${responder.url})` });
  });

  it('fail a revoked certificate: 403 with the reason, counted as a refusal', async () => {
    const answer = await reenroll('strict', certs.revoked!);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal(`403 TLS client certificate not accepted: certificate revoked (OCSP ${responder.url})\n`);
    expect(await latestRefusal()).to.deep.include({ code: 'EST_CLIENT_CERT_REJECTED', status: 403, operation: 'simplereenroll' });
  });

  it('ok renew_revoked_cert: true renews the revoked certificate, and says so in the record', async () => {
    const answer = await reenroll('lenient', certs.revoked!);
    expect(answer.status, answer.body).to.equal(200);
    expect(await verify(await certsFromP7(ra.dir, answer.body, 'rr-lenient'))).to.contain(': OK');
    expect((await latest()).principal).to.deep.include({ revocation: `revoked (OCSP ${responder.url} (cached)); renewal of revoked certificates allowed` });
  });

  it('ok strongSwan pki --est --cert/--key renews a good certificate under revocation checking', async () => {
    const result = await pkiRenew(certs['ss-good']!, 'rr-ss-good');
    expect(result.code, result.stderr).to.equal(0);
    const renewed = join(ra.dir, 'rr-ss-good.crt');
    writeFileSync(renewed, result.stdout);
    expect(await verify(renewed)).to.contain(': OK');
    expect(await x509Field(renewed, '-subject')).to.equal('subject=CN=ss-good');
  });

  it('fail strongSwan pki --est --cert/--key with a revoked certificate gets no certificate', async () => {
    const result = await pkiRenew(certs['ss-revoked']!, 'rr-ss-revoked');
    expect(result.code).not.to.equal(0);
    expect(result.stdout).not.to.contain('BEGIN CERTIFICATE');
    expect(result.stderr).to.contain('403');
    expect(await latestRefusal()).to.deep.include({ code: 'EST_CLIENT_CERT_REJECTED', status: 403 });
  });

  it('fail hard_fail: with the responder down, a certificate never checked before cannot renew', async () => {
    await responder.stop();
    const answer = await reenroll('strict', certs.unchecked!);
    expect(answer.status).to.equal(403);
    expect(answer.body).to.match(/^403 TLS client certificate not accepted: revocation status unknown: /);
  });
});
