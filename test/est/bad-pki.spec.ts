import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { adminCli, latestRequest, type RequestJson } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const DAY_MS = 86_400_000;
const CA = ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
const DEVICE = ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'];
/** An extension no validator knows, marked critical (RFC 5280 §4.2: a relying party MUST reject the certificate). */
const UNKNOWN_CRITICAL = '1.3.6.1.4.1.55555.1=critical,ASN1:UTF8String:must understand';

type Issued = { certFile: string; keyFile: string };

/**
 * Bad PKIs built with `openssl` at test time, presented by curl as real TLS
 * client certificates (the device certificate, then the intermediates it
 * sends) to a running est-ra: each RFC 5280 rule the path validator enforces
 * is refused with its reason, and the good paths still enroll and renew.
 */
describe('path validation: bad PKIs built by openssl, real TLS client certificates', function () {
  this.timeout(120_000);
  let dir: string;
  let ra: TestEstRa;
  let clockOffsetMs = 0;
  const sends: Record<string, { certFile: string; keyFile: string }> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'est-ra-bad-pki-'));
    const root = await opensslSelfSigned(dir, 'mfg-root', { subject: '/O=Acme/CN=Acme Root', days: 3650, addext: CA.slice(0, 2) });
    // A configured root that excludes a DNS subtree: its own name constraints are applied too (as OpenSSL does).
    const constrainedRoot = await opensslSelfSigned(dir, 'constrained-root', {
      subject: '/O=Acme/CN=Acme Constrained Root',
      days: 3650,
      addext: [...CA.slice(0, 2), 'nameConstraints=critical,excluded;DNS:forbidden.example'],
    });
    const oldRoot = await opensslSelfSigned(dir, 'old-root', { subject: '/O=Acme/CN=Acme Root 2015', days: 3650, addext: CA.slice(0, 2) });
    const newRoot = await opensslSelfSigned(dir, 'new-root', { subject: '/O=Acme/CN=Acme Root 2025', days: 3650, addext: CA.slice(0, 2) });
    const renewRoot = await opensslSelfSigned(dir, 'renew-root', { subject: '/O=Acme/CN=Acme Renewal CA', days: 3650, addext: CA.slice(0, 2) });

    const issue = (name: string, ca: Issued, extensions: readonly string[], days?: number) =>
      opensslIssue(dir, name, { subject: `/O=Acme/CN=${name}`, caFile: ca.certFile, caKeyFile: ca.keyFile, extensions, days });
    const bundle = (name: string, leaf: Issued, ...intermediates: Issued[]) => {
      const certFile = join(dir, `${name}.chain.pem`);
      writeFileSync(certFile, [leaf, ...intermediates].map((c) => readFileSync(c.certFile, 'utf8')).join(''));
      sends[name] = { certFile, keyFile: leaf.keyFile };
    };

    // Good: directly under the root, and through an intermediate the device sends.
    bundle('direct', await issue('device-direct', root, DEVICE));
    const line = await issue('Line CA', root, CA);
    bundle('via-intermediate', await issue('device-line', line, DEVICE), line);

    // pathLenConstraint 0 on the first intermediate, and a second intermediate under it.
    const noSubCa = await issue('No-Sub-CA CA', root, ['basicConstraints=critical,CA:TRUE,pathlen:0', ...CA.slice(1)]);
    const subCa = await issue('Sub CA', noSubCa, CA);
    bundle('path-length', await issue('device-pathlen', subCa, DEVICE), subCa, noSubCa);
    bundle('path-length-ok', await issue('device-pathlen-ok', noSubCa, DEVICE), noSubCa);

    // Name constraints: an intermediate permits one DNS subtree; the root excludes another.
    const plantCa = await issue('Plant CA', root, [...CA, 'nameConstraints=critical,permitted;DNS:line3.plant.local']);
    bundle('name-ok', await issue('device-named', plantCa, [...DEVICE, 'subjectAltName=DNS:dev1.line3.plant.local']), plantCa);
    bundle('name-outside', await issue('device-bank', plantCa, [...DEVICE, 'subjectAltName=DNS:www.bank.example']), plantCa);
    bundle('name-excluded-by-root', await issue('device-forbidden', constrainedRoot, [...DEVICE, 'subjectAltName=DNS:a.forbidden.example']));

    // Unknown critical extensions, on the device certificate and on an intermediate.
    bundle('critical-leaf', await issue('device-critical', root, [...DEVICE, UNKNOWN_CRITICAL]));
    const criticalCa = await issue('Critical CA', root, [...CA, UNKNOWN_CRITICAL]);
    bundle('critical-intermediate', await issue('device-under-critical', criticalCa, DEVICE), criticalCa);

    // CA rules on intermediates: not a CA at all, and a CA without keyCertSign.
    const notCa = await issue('Not A CA', root, ['basicConstraints=critical,CA:FALSE']);
    bundle('not-a-ca', await issue('device-under-non-ca', notCa, DEVICE), notCa);
    const noCertSign = await issue('No CertSign CA', root, ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature,cRLSign']);
    bundle('no-key-cert-sign', await issue('device-under-no-certsign', noCertSign, DEVICE), noCertSign);

    // An intermediate that expires in a day (the clock moves past it).
    const shortCa = await issue('Short-Lived CA', root, CA, 1);
    bundle('expired-intermediate', await issue('device-under-short', shortCa, DEVICE), shortCa);

    // Cross-signed: the intermediate of the new root, certified again by the old root; only the old root is configured.
    const crossKey = await opensslCsr(dir, 'cross-ca', { subject: '/O=Acme/CN=Acme Issuing CA 2025' });
    const byNewRoot = await opensslIssue(dir, 'cross-ca-by-new', { caFile: newRoot.certFile, caKeyFile: newRoot.keyFile, extensions: CA, csr: crossKey });
    const byOldRoot = await opensslIssue(dir, 'cross-ca-by-old', { caFile: oldRoot.certFile, caKeyFile: oldRoot.keyFile, extensions: CA, csr: crossKey });
    const crossDevice = await issue('device-cross', { certFile: byNewRoot.certFile, keyFile: crossKey.keyFile }, DEVICE);
    // The new-root certificate first: the validator must look past it (its issuer is not configured) to the cross-certificate.
    bundle('cross-signed', crossDevice, byNewRoot, byOldRoot);
    bundle('new-root-only', crossDevice, byNewRoot);

    // Renewal (a profile whose local CA is renewRoot): device certificates of one day, under a long-lived and a short-lived sub-CA.
    const renewSub = await issue('Renewal Sub CA', renewRoot, CA);
    const renewShortSub = await issue('Renewal Short Sub CA', renewRoot, CA, 1);
    bundle('renew-ok', await issue('renew-device', renewSub, DEVICE, 1), renewSub);
    bundle('renew-expired-intermediate', await issue('renew-device-short', renewShortSub, DEVICE, 1), renewShortSub);
    // An expired device certificate over a pathLen violation: the TLS handshake reports only CERT_HAS_EXPIRED for such a chain.
    const renewNoSub = await issue('Renewal No-Sub-CA CA', renewRoot, ['basicConstraints=critical,CA:TRUE,pathlen:0', ...CA.slice(1)]);
    const renewSubSub = await issue('Renewal Sub-Sub CA', renewNoSub, CA);
    bundle('renew-path-length', await issue('renew-device-pathlen', renewSubSub, DEVICE, 1), renewSubSub, renewNoSub);

    ra = await startEstRa({
      now: () => new Date(Date.now() + clockOffsetMs),
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const policies = config.authentication_policies as Record<string, Record<string, unknown>>;
          policies.demo!.authentication_cas = [root.certFile, constrainedRoot.certFile, oldRoot.certFile];
          // The renewal devices' certificates come from the renewal root's sub-CAs, not through est-ra.
          policies.demo!.renewal_cas = [renewRoot.certFile];
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          demo.enroll_authentication = { methods: ['client_certificate'] };
          profiles.renew = {
            ...structuredClone(demo),
            default: false,
            labels: ['renew'],
            local_ca: { certificate: renewRoot.certFile, key: renewRoot.keyFile, chain: [] },
            renewal_settings: { renew_valid_cert: 'anytime', renew_expired_cert: 10, renewal_key_pair: 'optional' },
          };
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

  /** A request with the certificate `name` sends; the CSR asks for `commonName` (a renewal keeps the certificate's). */
  const present = async (operation: string, name: string, commonName = name): Promise<{ status: number; body: string }> => {
    const csr = await opensslCsr(ra.dir, `${name}-${Math.random().toString(16).slice(2)}`, { subject: `/O=Acme/CN=${commonName}` });
    return curl(ra, operation, ['--cert', sends[name]!.certFile, '--key', sends[name]!.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };
  const enroll = (name: string) => present('/simpleenroll', name);
  const refusal = (reason: string) => `403 TLS client certificate not accepted: ${reason}\n`;

  it('ok a device certificate issued directly by the configured root', async () => {
    const answer = await enroll('direct');
    expect(answer.status, answer.body).to.equal(200);
    expect(await opensslVerify(ra, await certsFromP7(ra.dir, answer.body, 'bad-pki-direct'))).to.contain(': OK');
  });

  it('ok a device certificate through the intermediate it sends', async () => {
    const answer = await enroll('via-intermediate');
    expect(answer.status, answer.body).to.equal(200);
    const latest = await latestRequest(ra);
    expect(latest?.principal).to.include({ kind: 'certificate', issuer: 'O=Acme, CN=Line CA' });
  });

  it('fail pathLenConstraint 0 exceeded: a second intermediate under a CA that allows none', async () => {
    const answer = await enroll('path-length');
    expect(answer.body).to.equal(refusal('intermediate CA O=Acme, CN=No-Sub-CA CA allows 0 intermediate CA(s) below it (pathLenConstraint), the path has 1'));
  });

  it('ok pathLenConstraint 0 with the device certificate right under that CA', async () => {
    expect((await enroll('path-length-ok')).status).to.equal(200);
  });

  it('ok a DNS name inside the permitted subtree of the intermediate', async () => {
    expect((await enroll('name-ok')).status).to.equal(200);
  });

  it("fail a DNS name outside the intermediate's permitted subtree", async () => {
    const answer = await enroll('name-outside');
    expect(answer.body).to.equal(refusal("a name on the path is outside the permitted subtrees of a CA's name constraints"));
  });

  it("fail a DNS name in the configured root's excluded subtree (the anchor's own name constraints)", async () => {
    const answer = await enroll('name-excluded-by-root');
    expect(answer.body).to.equal(refusal("a name on the path is in the excluded subtrees of a CA's name constraints"));
  });

  it('fail an unknown critical extension on the device certificate', async () => {
    const answer = await enroll('critical-leaf');
    expect(answer.body).to.equal(refusal('certificate: unknown critical extension 1.3.6.1.4.1.55555.1'));
  });

  it('fail an unknown critical extension on an intermediate', async () => {
    const answer = await enroll('critical-intermediate');
    expect(answer.body).to.equal(refusal('intermediate CA O=Acme, CN=Critical CA: unknown critical extension 1.3.6.1.4.1.55555.1'));
  });

  it('fail an intermediate that is not a CA', async () => {
    const answer = await enroll('not-a-ca');
    expect(answer.body).to.equal(refusal('intermediate CA O=Acme, CN=Not A CA is not a CA (basicConstraints)'));
  });

  it('fail an intermediate CA without keyCertSign', async () => {
    const answer = await enroll('no-key-cert-sign');
    expect(answer.body).to.equal(refusal('intermediate CA O=Acme, CN=No CertSign CA may not sign certificates (keyUsage without keyCertSign)'));
  });

  it('fail an expired intermediate (the request time is past its notAfter)', async () => {
    clockOffsetMs = 2 * DAY_MS;
    const answer = await enroll('expired-intermediate');
    expect(answer.body).to.match(/^403 TLS client certificate not accepted: intermediate CA O=Acme, CN=Short-Lived CA: certificate expired \d{4}-/);
  });

  it('ok a cross-signed path: the new intermediate certified by the configured old root, sent after the new-root one', async () => {
    const answer = await enroll('cross-signed');
    expect(answer.status, answer.body).to.equal(200);
    // Looked up by subject: a request of an earlier test carries a later (moved) clock.
    const recent = await adminCli(join(ra.dir, 'config.yaml')).json<RequestJson>('requests', 'list', '--limit', '50');
    const recorded = recent.find((r) => r.principal.kind === 'certificate' && r.principal.subject === 'O=Acme, CN=device-cross');
    expect(recorded?.principal).to.include({ issuer: 'O=Acme, CN=Acme Issuing CA 2025' });
  });

  it('fail the same device with only the new-root intermediate: the new root is not configured', async () => {
    const answer = await enroll('new-root-only');
    expect(answer.body).to.equal(refusal('it was not issued by an authentication CA of the policy and is not pinned'));
  });

  it('ok renewal of an expired device certificate (renew_expired_cert: 10) under a valid intermediate', async () => {
    clockOffsetMs = 2 * DAY_MS;
    const answer = await present('/renew/simplereenroll', 'renew-ok', 'renew-device');
    expect(answer.status, answer.body).to.equal(200);
  });

  it('fail renewal of an expired device certificate whose intermediate has expired too', async () => {
    clockOffsetMs = 2 * DAY_MS;
    const answer = await present('/renew/simplereenroll', 'renew-expired-intermediate', 'renew-device-short');
    expect(answer.body).to.match(/^403 TLS client certificate not accepted: intermediate CA O=Acme, CN=Renewal Short Sub CA: certificate expired \d{4}-/);
  });

  it('fail renewal of an expired device certificate whose path exceeds a pathLenConstraint: the expiry renewal allows hides nothing', async () => {
    clockOffsetMs = 2 * DAY_MS;
    const answer = await present('/renew/simplereenroll', 'renew-path-length', 'renew-device-pathlen');
    expect(answer.body).to.equal(
      refusal('intermediate CA O=Acme, CN=Renewal No-Sub-CA CA allows 0 intermediate CA(s) below it (pathLenConstraint), the path has 1'),
    );
  });
});
