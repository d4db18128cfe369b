import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify, strongswanPki, x509Field } from '../helpers/clients.js';
import { mustRun } from '../helpers/run.js';
import { createPasscode } from '../helpers/passcodes.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/**
 * Issue #9 §1: what a certificate may say. The demo profile as `est-ra init`
 * writes it, and profiles with fixed and registered values, driven by curl +
 * openssl and strongSwan as a device would; every refusal names its rule.
 */
describe('subject and SAN policy: the profile decides what a certificate may say', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  const enroll = async (name: string, options: { subject?: string; addext?: string[]; keyArgs?: string[]; label?: string; passcode?: string } = {}) => {
    const device = await opensslCsr(ra.dir, name, options);
    const answer = await curl(ra, `${options.label ? `/${options.label}` : ''}/simpleenroll`, [
      '--user',
      `:${options.passcode ?? ra.passcode}`,
      ...PKCS10,
      '--data-binary',
      `@${device.csrPemFile}`,
    ]);
    return { ...answer, device };
  };
  const issuedCert = async (name: string, body: string): Promise<string> => {
    const pem = await certsFromP7(ra.dir, body, name);
    expect(await opensslVerify(ra, pem)).to.contain(': OK');
    return pem;
  };

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) => {
        // A second profile on the same CA, with fixed and registered values (user_supplied).
        const config = editProfile(yaml, 'demo', () => {});
        return config.replace(
          /^profiles:\n/m,
          `profiles:
  fixed:
    labels: [fixed]
    authentication_policy: demo
    local_ca: { certificate: pki/issuing-ca.crt, key: pki/issuing-ca.key, chain: [pki/root-ca.crt] }
    subject:
      common_name: { optional: false, sources: [user_supplied, csr], patterns: ['/SN[0-9]{8}/'] }
      organization_name: { optional: false, sources: [fixed_value], value: ACME }
    san:
      dns_name: { include: optional, sources: [csr], patterns: ['*.line3.plant.local'], auto_include_cn: false }
      ip_address: { include: optional, sources: [csr], patterns: [10.1.0.0/16] }
`,
        );
      },
    });
  });
  after(async () => ra.close());

  it('#9 - fail demo: CN=www.bank.example with DNS:*.example.com and an email SAN is refused, naming the rule', async () => {
    const answer = await enroll('bank', { subject: '/CN=www.bank.example', addext: ['subjectAltName=DNS:*.example.com,email:ceo@bank.example'] });
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal("403 subject.common_name www.bank.example does not match the profile's patterns (/[A-Za-z0-9][A-Za-z0-9_-]{0,63}/)\n");
  });

  it('fail demo: a wildcard DNS name, a public IP, an email SAN, a disabled attribute: each refused with its rule', async () => {
    const cases: [string, { subject?: string; addext?: string[] }, string][] = [
      ['dns-wild', { addext: ['subjectAltName=DNS:*.line1.local'] }, "403 san.dns_name *.line1.local does not match the profile's patterns"],
      ['dns-public', { addext: ['subjectAltName=DNS:www.example.com'] }, "403 san.dns_name www.example.com does not match the profile's patterns"],
      ['ip-public', { addext: ['subjectAltName=IP:8.8.8.8'] }, "403 san.ip_address 8.8.8.8 does not match the profile's patterns"],
      ['email-san', { addext: ['subjectAltName=email:a@b.local'] }, '403 san.email is not allowed by profile; the CSR asks for a@b.local'],
      ['locality', { subject: '/CN=locality/L=Berlin' }, '403 subject.locality is not allowed by profile; the CSR asks for Berlin'],
      ['title', { subject: '/CN=title/title=Boss' }, '403 subject attribute 2.5.4.12 is not allowed by profile; the CSR asks for Boss'],
      ['two-cn', { subject: '/CN=one/CN=two' }, '403 subject.common_name may appear once; the CSR asks for one, two'],
      ['uri', { addext: ['subjectAltName=URI:https://evil.example/'] }, '403 san.uri is not allowed by profile; the CSR asks for https://evil.example/'],
    ];
    for (const [name, options, reason] of cases) {
      const answer = await enroll(name, options);
      expect(answer.status, name).to.equal(403);
      expect(answer.body, name).to.contain(reason);
    }
  });

  it('ok demo: a device name with .local DNS names and a private IP is issued exactly as asked', async () => {
    const answer = await enroll('device-001', { subject: '/CN=device-001/O=Plant 7', addext: ['subjectAltName=DNS:device-001.line1.local,IP:10.1.2.3'] });
    expect(answer.status, answer.body).to.equal(200);
    const pem = await issuedCert('device-001', answer.body);
    expect(await x509Field(pem, '-subject')).to.equal('subject=O=Plant 7,CN=device-001');
    expect(await x509Field(pem, '-ext'))
      .to.contain('DNS:device-001.line1.local')
      .and.to.contain('IP Address:10.1.2.3');
  });

  it('ok local-ca issues only what the policy yields: a CSR asking for CA:TRUE and keyCertSign gets an end-entity certificate', async () => {
    const answer = await enroll('wants-ca', {
      addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign', 'extendedKeyUsage=serverAuth'],
    });
    expect(answer.status, answer.body).to.equal(200);
    const text = await x509Field(await issuedCert('wants-ca', answer.body), '-text');
    expect(text).to.contain('CA:FALSE').and.not.to.contain('CA:TRUE');
    expect(text).not.to.contain('Certificate Sign');
    expect(text).to.contain('TLS Web Client Authentication').and.not.to.contain('TLS Web Server Authentication');
  });

  it('fail a CSR signed with SHA-1 is refused as proof of possession', async () => {
    const answer = await enroll('sha1', { keyArgs: ['-newkey', 'rsa:2048', '-sha1'] });
    expect(answer.status).to.equal(403);
    expect(answer.body).to.equal('403 the CSR is signed with SHA-1, which the profile does not accept as proof of possession\n');
  });

  it('fail fixed_value: a CSR asking for another organization is refused; ok without one, the fixed value is issued', async () => {
    const evil = await enroll('fixed-evil', { label: 'fixed', subject: '/CN=SN00000001/O=Evil Corp' });
    expect(evil.status).to.equal(403);
    expect(evil.body).to.equal('403 subject.organization_name is fixed to ACME; the CSR asks for Evil Corp\n');
    const plain = await enroll('fixed-plain', { label: 'fixed', subject: '/CN=SN00000002' });
    expect(plain.status, plain.body).to.equal(200);
    const pem = await issuedCert('fixed-plain', plain.body);
    expect(await x509Field(pem, '-subject')).to.equal('subject=CN=SN00000002,O=ACME');
  });

  it('fail fixed profile: a serial-number CN outside the regular expression, a DNS name outside the line, an IP outside the block', async () => {
    const cases: [string, { subject: string; addext?: string[] }, string][] = [
      ['fixed-cn', { subject: '/CN=sensor' }, "403 subject.common_name sensor does not match the profile's patterns (/SN[0-9]{8}/)"],
      [
        'fixed-dns',
        { subject: '/CN=SN00000003', addext: ['subjectAltName=DNS:a.b.line3.plant.local'] },
        '403 san.dns_name a.b.line3.plant.local does not match',
      ],
      ['fixed-ip', { subject: '/CN=SN00000004', addext: ['subjectAltName=IP:10.2.0.1'] }, '403 san.ip_address 10.2.0.1 does not match'],
    ];
    for (const [name, options, reason] of cases) {
      const answer = await enroll(name, { label: 'fixed', ...options });
      expect(answer.status, name).to.equal(403);
      expect(answer.body, name).to.contain(reason);
    }
    const ok = await enroll('fixed-ok', { label: 'fixed', subject: '/CN=SN00000005', addext: ['subjectAltName=DNS:s5.line3.plant.local,IP:10.1.9.9'] });
    expect(ok.status, ok.body).to.equal(200);
  });

  it('ok user_supplied: the passcode registers the common name; another is refused, none gets the registered one', async () => {
    const passcode = await createPasscode(ra, '--value', 'common_name=SN17171717');
    const other = await enroll('reg-other', { label: 'fixed', subject: '/CN=SN99999999', passcode });
    expect(other.status).to.equal(403);
    expect(other.body).to.equal('403 subject.common_name is registered as SN17171717 for this credential; the CSR asks for SN99999999\n');
    const blank = await enroll('reg-blank', { label: 'fixed', subject: '/O=ACME', passcode });
    expect(blank.status, blank.body).to.equal(200);
    expect(await x509Field(await issuedCert('reg-blank', blank.body), '-subject')).to.equal('subject=CN=SN17171717,O=ACME');
  });

  it('fail a passcode create with an unknown registered key names the keys', async () => {
    const result = await mustRun(process.execPath, [
      CLI,
      'passcodes',
      'create',
      '--policy',
      'demo',
      '--value',
      'colour=red',
      '--config',
      join(ra.dir, 'config.yaml'),
    ]).catch((err: unknown) => (err as Error).message);
    expect(result).to.contain('must be key=value with a key among common_name');
  });

  it('strongSwan pki --est: a name the profile allows is issued, one it does not is refused', async () => {
    const good = await opensslCsr(ra.dir, 'sw-good', { subject: '/CN=sw-good', addext: ['subjectAltName=DNS:sw-good.line2.local'] });
    const bad = await opensslCsr(ra.dir, 'sw-bad', { subject: '/CN=www.bank.example' });
    const ok = await strongswanPki(ra, ['--est', '--in', good.csrDerFile, '--userpass', `device:${ra.passcode}`, '--outform', 'pem']);
    expect(ok.code, ok.stderr).to.equal(0);
    expect(ok.stdout).to.contain('-----BEGIN CERTIFICATE-----');
    const refused = await strongswanPki(ra, ['--est', '--in', bad.csrDerFile, '--userpass', `device:${ra.passcode}`, '--outform', 'pem']);
    expect(refused.code).not.to.equal(0);
    expect(refused.stdout).not.to.contain('BEGIN CERTIFICATE');
  });
});

describe('signature_algorithm: what the issued certificates are signed with', function () {
  this.timeout(60_000);

  it('ok a list makes the local CA sign with the first algorithm its key can make', async () => {
    const ra = await startEstRa({
      editConfig: (yaml) => editProfile(yaml, 'demo', (profile) => (profile.signature_algorithm = ['sha256WithRSA', 'sha384WithECDSA'])),
    });
    try {
      const device = await opensslCsr(ra.dir, 'sig384');
      const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
      expect(answer.status, answer.body).to.equal(200);
      const pem = await certsFromP7(ra.dir, answer.body, 'sig384');
      expect(await opensslVerify(ra, pem)).to.contain(': OK');
      expect(await x509Field(pem, '-text')).to.contain('Signature Algorithm: ecdsa-with-SHA384');
    } finally {
      await ra.close();
    }
  });

  it('fail a list the CA key cannot make is a start-up error naming the setting', async () => {
    const error = await startEstRa({
      editConfig: (yaml) => editProfile(yaml, 'demo', (profile) => (profile.signature_algorithm = ['sha256WithRSA'])),
    }).then(
      async (ra) => {
        await ra.close();
        return 'started';
      },
      (err: unknown) => (err as Error).message,
    );
    expect(error).to.equal("profiles.demo.signature_algorithm: the issuing CA's P-256 key can make none of sha256WithRSA");
  });
});

describe('user_supplied from the bootstrap certificate: IDevID serialNumber becomes the LDevID common name', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let device: { certFile: string; keyFile: string };

  before(async () => {
    const factory = mkdtempSync(join(tmpdir(), 'est-ra-idevid-'));
    const ca = await opensslSelfSigned(factory, 'mfg-ca', {
      subject: '/CN=Acme Manufacturing CA',
      days: 3650,
      addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
    });
    device = await opensslIssue(factory, 'idevid', {
      subject: '/CN=Acme sensor/serialNumber=SN31415926',
      caFile: ca.certFile,
      caKeyFile: ca.keyFile,
      extensions: ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth'],
    });
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          (config.authentication_policies as Record<string, Record<string, unknown>>).demo = { authentication_cas: [ca.certFile] };
          const demo = (config.profiles as Record<string, Record<string, unknown>>).demo!;
          demo.enroll_authentication = { methods: ['client_certificate'] };
          demo.subject = { common_name: { optional: false, sources: ['user_supplied'] }, serial_number: { enabled: false } };
        }),
    });
  });
  after(async () => ra.close());

  const enrollWithIdevid = async (name: string, subject: string) => {
    const csr = await opensslCsr(ra.dir, name, { subject });
    return curl(ra, '/simpleenroll', ['--cert', device.certFile, '--key', device.keyFile, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  };

  it('ok a CSR naming the serial number, and one naming nothing, get CN=<serialNumber>; another name is refused', async () => {
    const named = await enrollWithIdevid('ldevid-1', '/CN=SN31415926');
    expect(named.status, named.body).to.equal(200);
    const blank = await enrollWithIdevid('ldevid-2', '/O=Plant 7');
    expect(blank.status, blank.body).to.equal(200);
    const pem = await certsFromP7(ra.dir, blank.body, 'ldevid-2');
    expect(await opensslVerify(ra, pem)).to.contain(': OK');
    expect(await x509Field(pem, '-subject')).to.equal('subject=CN=SN31415926,O=Plant 7');
    const other = await enrollWithIdevid('ldevid-3', '/CN=SN00000000');
    expect(other.status).to.equal(403);
    expect(other.body).to.equal('403 subject.common_name is registered as SN31415926 for this credential; the CSR asks for SN00000000\n');
  });
});
