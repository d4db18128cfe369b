import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { adminCli, CLI } from '../helpers/admin-cli.js';
import { certsFromP7, curl } from '../helpers/clients.js';
import { editConfig, editProfile } from '../helpers/config.js';
import { opensslCsr, opensslIssue, opensslSelfSigned } from '../helpers/csr.js';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { run } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** The profile est-ra serves here: an allowlist, P-256 only (and, from the sample, device names without dots). */
const editServed = (yaml: string): string =>
  editProfile(yaml, 'demo', (p) => {
    p.allowed_ip_addresses = ['10.1.0.0/16', '127.0.0.1'];
    p.allowed_key_types = ['p_256'];
  });

/** The same with weekday hours in Berlin, and dates on the command line read in Berlin. */
const editSimulated = (yaml: string): string =>
  editConfig(
    editProfile(editServed(yaml), 'demo', (p) => {
      p.usage_restrictions = {
        time_zone: 'Europe/Berlin',
        operational_hours: Object.fromEntries(['monday', 'tuesday', 'wednesday', 'thursday', 'friday'].map((d) => [d, ['06:00-22:00']])),
      };
    }),
    (c) => {
      c.time_zone = 'Europe/Berlin';
    },
  );

describe('est-ra simulate: a dry run through the real pipeline', () => {
  let ra: TestEstRa;
  let config: string;
  let served: string;
  let passcodeId: string;

  before(async () => {
    ra = await startEstRa({ editConfig: editServed });
    const text = readFileSync(join(ra.dir, 'config.yaml'), 'utf8');
    config = join(ra.dir, 'simulate.yaml');
    writeFileSync(config, editSimulated(text));
    served = join(ra.dir, 'served.yaml');
    writeFileSync(served, editServed(text));
    passcodeId = (await adminCli(config).json<{ id: string }>('passcodes', 'list'))[0]!.id;
  });

  after(() => ra.close());

  const simulateWith = (file: string, ...args: string[]) => run(process.execPath, [CLI, 'simulate', '--config', file, '--profile', 'demo', ...args]);
  const simulate = (...args: string[]) => simulateWith(config, ...args);
  const counts = async () => {
    const [stats] = await adminCli(config).json<Record<string, number>>('store', 'stats');
    return { requests: stats!.requests, refusals: stats!.refusals_counted, certificates: stats!.certificates };
  };

  it('ok an acceptable request: exit 0, every step named, and the certificate it would yield', async () => {
    const device = await opensslCsr(ra.dir, 'sim-ok', { subject: '/CN=sensor-17', addext: ['subjectAltName=DNS:sensor-17.line3.local,IP:10.1.2.3'] });
    const before = await counts();
    // A Wednesday afternoon in Berlin, from the plant network.
    const result = await simulate('--csr', device.csrPemFile, '--peer', '10.1.2.3', '--at', '2027-03-31 14:00', '--passcode-id', passcodeId);
    expect(result.code, result.stdout + result.stderr).to.equal(0);
    for (const step of [
      'allowed_ip_addresses',
      'authentication',
      'CSR and proof of possession',
      'operational hours and dates',
      'key type',
      'renewal window and key pair',
      'signature algorithm',
      'subject',
      'subjectAltName',
      'passcode use',
    ]) {
      expect(result.stdout).to.match(new RegExp(`^  ok +${step}( |$)`, 'm'));
    }
    expect(result.stdout).to.contain('at 2027-03-31T12:00:00.000Z (Europe/Berlin) from 10.1.2.3');
    expect(result.stdout).to.match(/^would issue:$/m);
    expect(result.stdout).to.match(/^ {2}subject: +CN=sensor-17$/m);
    expect(result.stdout).to.match(/^ {2}subjectAltName: +DNS:sensor-17\.line3\.local, IP:10\.1\.2\.3$/m);
    expect(result.stdout).to.match(/^ {2}key usage: +digital_signature, key_agreement$/m);
    expect(result.stdout).to.match(/^ {2}extended key usage: +client_authentication$/m);
    expect(result.stdout).to.match(/^ {2}validity: +2027-03-31T11:59:00\.000Z to 2028-03-30T12:00:00\.000Z \(365 days\)$/m);
    // Nothing recorded, no passcode use taken.
    expect(await counts()).to.deep.equal(before);
    const [passcode] = await adminCli(config).json<{ uses_count: number }>('passcodes', 'list');
    expect(passcode!.uses_count).to.equal(0);
  });

  it('fail refusals: exit 1, the refusing step, and the reason the device gets', async () => {
    const good = await opensslCsr(ra.dir, 'sim-good', { subject: '/CN=sensor-18' });
    const dotted = await opensslCsr(ra.dir, 'sim-dotted', { subject: '/CN=sensor.18' });
    const rsa = await opensslCsr(ra.dir, 'sim-rsa', { subject: '/CN=sensor-19', keyArgs: ['-newkey', 'rsa:2048'] });
    const wednesday = ['--at', '2027-03-31 14:00'];
    const passcode = ['--passcode-id', passcodeId];
    const cases: [string, string[], string][] = [
      [
        'another network',
        [good.csrPemFile, '--peer', '10.9.9.9', ...passcode, ...wednesday],
        "allowed_ip_addresses: 403 client address 10.9.9.9 not allowed by profile 'demo'",
      ],
      ['no credentials', [good.csrPemFile, ...wednesday], 'authentication: 401 authentication required'],
      [
        'an unknown passcode',
        [good.csrPemFile, '--passcode-id', 'nope', ...wednesday],
        'authentication: 401 authentication failed: unknown or disabled passcode',
      ],
      [
        'a Saturday',
        [good.csrPemFile, ...passcode, '--at', '2027-04-03 14:00'],
        'operational hours and dates: 403 outside operational hours (Europe/Berlin): opens monday 06:00',
      ],
      ['an RSA key', [rsa.csrPemFile, ...passcode, ...wednesday], 'key type: 403 key type rsa_2048 not allowed by profile (allowed: p_256)'],
      ['a dotted name', [dotted.csrPemFile, ...passcode, ...wednesday], 'subject: 403 subject.common_name sensor.18 does not match'],
    ];
    for (const [name, args, refusal] of cases) {
      const result = await simulate('--csr', ...args);
      expect(result.code, `${name}\n${result.stdout}${result.stderr}`).to.equal(1);
      expect(result.stdout, name).to.contain(`refused at ${refusal}`);
      expect(result.stdout, name).not.to.contain('would issue');
    }
  });

  it('ok the refusal is the one the device gets from est-ra serve', async () => {
    const dotted = await opensslCsr(ra.dir, 'sim-device', { subject: '/CN=sensor.20' });
    const device = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${dotted.csrPemFile}`]);
    expect(device.status).to.equal(403);
    const simulated = await simulateWith(served, '--csr', dotted.csrPemFile, '--passcode-id', passcodeId, '--json');
    const json = JSON.parse(simulated.stdout) as { outcome: string; refusal: { step: string; status: number; reason: string } };
    expect(json.outcome).to.equal('refused');
    expect(json.refusal.step).to.equal('subject');
    expect(`${json.refusal.status} ${json.refusal.reason}`).to.equal(device.body.trim());
  });

  it('ok --cert: a renewal with the certificate as TLS client certificate, judged by the renewal window', async () => {
    const device = await opensslCsr(ra.dir, 'sim-renew', { subject: '/CN=sensor-21' });
    const enrolled = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(enrolled.status).to.equal(200);
    const certificate = await certsFromP7(ra.dir, enrolled.body, 'sim-renew');
    const renewal = join(ra.dir, 'sim-renew-again.csr');
    await run('openssl', ['req', '-new', '-key', device.keyFile, '-subj', '/CN=sensor-21', '-out', renewal]);
    const accepted = await simulateWith(served, '--csr', renewal, '--cert', certificate);
    expect(accepted.code, accepted.stdout).to.equal(0);
    expect(accepted.stdout).to.match(/^ {2}ok +renewal origin/m);
    expect(accepted.stdout).to.match(/^ {2}ok +identity of the renewed certificate +common_name=sensor-21/m);
    expect(accepted.stdout).to.match(/^ {2}subject: +CN=sensor-21$/m);
    const windowed = join(ra.dir, 'simulate-window.yaml');
    writeFileSync(
      windowed,
      editProfile(readFileSync(served, 'utf8'), 'demo', (p) => {
        p.renewal_settings = { renew_valid_cert: 30 };
      }),
    );
    const early = await simulateWith(windowed, '--csr', renewal, '--cert', certificate);
    expect(early.code, early.stdout).to.equal(1);
    expect(early.stdout).to.match(/refused at renewal window and key pair: 403 renewal opens 30 days before expiry: \d{4}-\d{2}-\d{2}/);
  });

  it('ok --client-cert: a manufacturer certificate enrolls, and the subject comes from it (user_supplied)', async () => {
    const ca = await opensslSelfSigned(ra.dir, 'sim-mfg-ca', {
      subject: '/CN=Acme Manufacturing CA',
      days: 3650,
      addext: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
    });
    const idevid = await opensslIssue(ra.dir, 'sim-idevid', {
      subject: '/CN=idevid-7/serialNumber=SN-0007',
      caFile: ca.certFile,
      caKeyFile: ca.keyFile,
      extensions: ['basicConstraints=CA:FALSE', 'extendedKeyUsage=clientAuth'],
    });
    const ldevid = join(ra.dir, 'simulate-ldevid.yaml');
    writeFileSync(
      ldevid,
      editConfig(readFileSync(served, 'utf8'), (c) => {
        (c.authentication_policies as Record<string, Record<string, unknown>>).demo!.authentication_cas = [ca.certFile];
        const demo = (c.profiles as Record<string, Record<string, unknown>>).demo!;
        demo.enroll_authentication = { methods: ['client_certificate'] };
        demo.subject = { common_name: { sources: ['user_supplied'] }, serial_number: { optional: false, sources: ['user_supplied'] } };
      }),
    );
    const asked = await opensslCsr(ra.dir, 'sim-ldevid', { subject: '/CN=SN-0007' });
    const accepted = await simulateWith(ldevid, '--csr', asked.csrPemFile, '--client-cert', idevid.certFile);
    expect(accepted.code, accepted.stdout + accepted.stderr).to.equal(0);
    expect(accepted.stdout).to.match(/^ {2}ok +authentication +certificate:/m);
    expect(accepted.stdout).to.match(/^ {2}subject: +CN=SN-0007, 2\.5\.4\.5=SN-0007$/m); // as est-ra records subjects (RFC 4514, OID for serialNumber)
    const other = await opensslCsr(ra.dir, 'sim-ldevid-other', { subject: '/CN=someone-else' });
    const refused = await simulateWith(ldevid, '--csr', other.csrPemFile, '--client-cert', idevid.certFile);
    expect(refused.code).to.equal(1);
    expect(refused.stdout).to.contain(
      'refused at subject: 403 subject.common_name is registered as SN-0007 for this credential; the CSR asks for someone-else',
    );
  });
});
