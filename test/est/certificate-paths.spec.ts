import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { latestRequest } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const DAY_MS = 86_400_000;
const CA_EXTENSIONS = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'];
const DEVICE_EXTENSIONS = ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth'];

/**
 * A manufacturer whose root the admin configures, and whose line CAs issue
 * the bootstrap certificates: devices send their certificate and the line CA
 * in the TLS handshake (curl --cert with both in one file), as real devices do.
 */
describe('client certificates through intermediate CAs the device sends', function () {
  this.timeout(60_000);
  let dir: string;
  let ra: TestEstRa;
  let clockOffsetMs = 0;
  const sends: Record<string, { certFile: string; keyFile: string }> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-paths-'));
    const root = await opensslSelfSigned(dir, 'acme-root', { subject: '/O=Acme/CN=Acme Device Root', days: 3650, addext: CA_EXTENSIONS });
    const issue = (name: string, ca: { certFile: string; keyFile: string }, extensions: readonly string[], days?: number) =>
      opensslIssue(dir, name, { subject: `/O=Acme/CN=${name}`, caFile: ca.certFile, caKeyFile: ca.keyFile, extensions, days });
    const lineCa = await issue('Acme Line 3 CA', root, CA_EXTENSIONS);
    const shortLivedCa = await issue('Acme Short-Lived CA', root, CA_EXTENSIONS, 1);
    const notACa = await issue('Acme Not A CA', root, ['basicConstraints=critical,CA:FALSE', 'keyUsage=critical,keyCertSign']);
    const bundle = (name: string, leaf: { certFile: string; keyFile: string }, ...intermediates: { certFile: string }[]) => {
      const certFile = join(dir, `${name}.chain.pem`);
      writeFileSync(certFile, [leaf, ...intermediates].map((c) => readFileSync(c.certFile, 'utf8')).join(''));
      sends[name] = { certFile, keyFile: leaf.keyFile };
    };
    const device = await issue('device-line-3', lineCa, DEVICE_EXTENSIONS);
    bundle('with-line-ca', device, lineCa);
    sends['leaf-only'] = device;
    bundle('with-short-lived-ca', await issue('device-short', shortLivedCa, DEVICE_EXTENSIONS), shortLivedCa);
    bundle('with-non-ca', await issue('device-non-ca', notACa, DEVICE_EXTENSIONS), notACa);

    ra = await startEstRa({
      now: () => new Date(Date.now() + clockOffsetMs),
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          (config.authentication_policies as Record<string, unknown>).demo = { authentication_cas: [root.certFile] };
          const demo = (config.profiles as Record<string, Record<string, unknown>>).demo!;
          demo.enroll_authentication = { methods: ['client_certificate'] };
        }),
    });
  });
  afterEach(() => {
    clockOffsetMs = 0;
  });
  after(async () => {
    await ra.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const enroll = async (name: string): Promise<{ status: number; body: string }> => {
    const csr = await opensslCsr(ra.dir, `${name}-${Math.random().toString(16).slice(2)}`);
    return curl(ra, '/simpleenroll', ['--cert', sends[name]!.certFile, '--key', sends[name]!.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };

  it('ok device certificate + line CA in the handshake, only the root configured: enrolled, issuer recorded', async () => {
    const answer = await enroll('with-line-ca');
    expect(answer.status, answer.body).to.equal(200);
    expect(await opensslVerify(ra, await certsFromP7(ra.dir, answer.body, 'paths-ok'))).to.contain(': OK');
    const latest = await latestRequest(ra);
    expect(latest?.principal).to.include({ kind: 'certificate', subject: 'O=Acme, CN=device-line-3', issuer: 'O=Acme, CN=Acme Line 3 CA' });
  });

  it('fail the device certificate alone: no path to the configured root', async () => {
    const answer = await enroll('leaf-only');
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 TLS client certificate not accepted: it was not issued by an authentication CA of the policy and is not pinned\n');
  });

  it('fail an intermediate that has expired is named', async () => {
    clockOffsetMs = 2 * DAY_MS;
    const answer = await enroll('with-short-lived-ca');
    expect(answer.status).to.equal(403);
    expect(answer.body).to.match(/^403 TLS client certificate not accepted: intermediate CA O=Acme, CN=Acme Short-Lived CA: certificate expired \d{4}-/);
  });

  it('ok the same chain enrolls while the intermediate is valid', async () => {
    expect((await enroll('with-short-lived-ca')).status).to.equal(200);
  });

  it('fail a certificate that is not a CA cannot stand between device and root', async () => {
    const answer = await enroll('with-non-ca');
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 TLS client certificate not accepted: intermediate CA O=Acme, CN=Acme Not A CA is not a CA (basicConstraints)\n');
  });
});
