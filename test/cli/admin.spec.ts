import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { certsFromP7, curl } from '../helpers/clients.js';
import { adminCli, CLI } from '../helpers/admin-cli.js';
import { mustRun, sh } from '../helpers/run.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

interface RequestJson {
  id: string;
  received_at: string;
  completed_at: string | null;
  profile: string;
  operation: string;
  peer_address: string;
  principal: { kind: string; passcode_id?: string; policy?: string };
  outcome: string;
  status: number | null;
  reason: string | null;
  serial: string | null;
  subject: string | null;
  possibly_issued_twice_upstream: boolean;
}

interface CertificateJson {
  serial: string;
  subject: string;
  sans: string[];
  not_before: string;
  not_after: string;
  issuer: string;
  profile: string;
  request_id: string;
}

/** The admin's read side, against a running est-ra that devices enroll at with curl. */
describe('est-ra requests, certificates, audit export and passcodes create --json', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let cli: ReturnType<typeof adminCli>;
  let passcode: { id: string; passcode: string };
  let issued: { serial: string; pem: string; requestId: string };

  const enroll = async (secret: string, name: string, addext: string[] = []): Promise<{ status: number; body: string }> => {
    const device = await opensslCsr(ra.dir, name, { addext });
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${secret}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    return { status: answer.status, body: answer.body };
  };

  before(async () => {
    ra = await startEstRa();
    cli = adminCli(join(ra.dir, 'config.yaml'));
    [passcode] = (await cli.json<{ id: string; passcode: string }>('passcodes', 'create', '--policy', 'demo', '--max-uses', '5')) as [
      { id: string; passcode: string },
    ];
    const answer = await enroll(passcode.passcode, 'admin-device-17', ['subjectAltName=DNS:admin-device-17.line3.local']);
    expect(answer.status).to.equal(200);
    const pemFile = await certsFromP7(ra.dir, answer.body, 'admin-device-17-issued');
    const serial = (await mustRun('openssl', ['x509', '-in', pemFile, '-noout', '-serial']))
      .trim()
      .replace(/^serial=/, '')
      .toLowerCase();
    const request = (await cli.json<RequestJson>('requests', 'list', '--outcome', 'issued')).find((r) => r.serial === serial);
    issued = { serial, pem: await mustRun('openssl', ['x509', '-in', pemFile]), requestId: request!.id };
    expect(await enroll('wrong-passcode', 'admin-wrong')).to.include({ status: 401 });
    // A name the demo profile refuses: recorded as a refused request, with the rule.
    expect((await enroll(passcode.passcode, 'admin-refused', ['subjectAltName=DNS:www.bank.example'])).status).to.equal(403);
  });
  after(async () => ra.close());

  it('ok passcodes create --json gives the id, the secret once and its limits', async () => {
    const [created] = await cli.json('passcodes', 'create', '--policy', 'demo', '--max-uses', '3', '--description', 'json');
    expect(created).to.include({ policy: 'demo', max_uses: 3, uses_count: 0, status: 'enabled', description: 'json', expires_at: null });
    expect(created!.passcode).to.match(/^[A-Za-z0-9]{24}$/);
    const listed = await cli.json('passcodes', 'list');
    expect(listed.find((p) => p.id === created!.id)).to.not.have.property('passcode');
  });

  it('ok requests list shows the issued request with who made it, and show gives everything recorded', async () => {
    const requests = await cli.json<RequestJson>('requests', 'list');
    const mine = requests.find((r) => r.serial === issued.serial);
    expect(mine).to.include({ profile: 'demo', operation: 'simpleenroll', outcome: 'issued', status: 200, peer_address: '127.0.0.1', reason: null });
    expect(mine!.principal).to.deep.equal({ kind: 'passcode', passcode_id: passcode.id, policy: 'demo' });
    const [shown] = await cli.json<RequestJson>('requests', 'show', mine!.id);
    expect(shown).to.deep.include(mine);
    expect((shown as unknown as { csr: string }).csr).to.match(/^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+-----END CERTIFICATE REQUEST-----$/);
    expect(shown).to.have.property('client_certificate', null);
    expect(shown!.possibly_issued_twice_upstream).to.equal(false);
    const table = await cli.text('requests', 'show', mine!.id);
    expect(table).to.match(new RegExp(`^serial: +${issued.serial}$`, 'm'));
    expect(table).to.match(/^possibly_issued_twice_upstream: +false$/m);
  });

  it('ok requests list filters by outcome, profile, since and limit; the table is aligned', async () => {
    const refused = await cli.json<RequestJson>('requests', 'list', '--outcome', 'refused');
    expect(refused.map((r) => r.outcome)).to.satisfy((outcomes: string[]) => outcomes.length > 0 && outcomes.every((o) => o === 'refused'));
    expect(refused.some((r) => r.reason?.includes('www.bank.example'))).to.equal(true);
    expect(await cli.json('requests', 'list', '--profile', 'no-such-profile')).to.deep.equal([]);
    expect(await cli.json('requests', 'list', '--since', '2099-01-01')).to.deep.equal([]);
    expect((await cli.json('requests', 'list', '--since', '1h')).length).to.be.greaterThan(1);
    expect(await cli.json('requests', 'list', '--limit', '1')).to.have.length(1);
    const table = (await cli.text('requests', 'list')).split('\n');
    expect(table[0]).to.match(/^ID +RECEIVED +PROFILE +OPERATION +OUTCOME +STATUS +PEER +WHO +SERIAL +REASON$/);
    const outcomeColumn = table[0]!.indexOf('OUTCOME');
    for (const line of table.slice(1).filter((l) => l !== '')) expect(line.slice(outcomeColumn)).to.match(/^(issued|refused) /);
  });

  it('fail requests show of an unknown id, and a bad --since, get a one-line reason', async () => {
    const unknown = await cli.run('requests', 'show', 'no-such-request');
    expect(unknown.code).to.equal(1);
    expect(unknown.stderr).to.equal('est-ra: no request no-such-request\n');
    const since = await cli.run('requests', 'list', '--since', 'yesterday');
    expect(since.code).to.equal(1);
    expect(since.stderr.trim().split('\n')).to.have.length(1);
    expect(since.stderr).to.contain('give a duration');
  });

  it('ok certificates list by device (CN or SAN), profile and expiry; show prints the fields; --pem the certificate', async () => {
    const byCn = await cli.json<CertificateJson>('certificates', 'list', '--device', 'ADMIN-DEVICE-17');
    expect(byCn.map((c) => c.serial)).to.deep.equal([issued.serial]);
    expect(byCn[0]).to.include({ subject: 'CN=admin-device-17', profile: 'demo', request_id: issued.requestId });
    expect(byCn[0]!.sans).to.deep.equal(['DNS:admin-device-17.line3.local']);
    expect(byCn[0]!.issuer).to.contain('issuing CA');
    expect((await cli.json<CertificateJson>('certificates', 'list', '--device', 'line3.local')).map((c) => c.serial)).to.deep.equal([issued.serial]);
    expect(await cli.json('certificates', 'list', '--device', 'no-such-device')).to.deep.equal([]);
    expect(await cli.json('certificates', 'list', '--profile', 'other')).to.deep.equal([]);
    // The demo profile issues for a year.
    expect(await cli.json('certificates', 'list', '--expiring', '30d')).to.deep.equal([]);
    expect((await cli.json<CertificateJson>('certificates', 'list', '--expiring', '400d')).map((c) => c.serial)).to.include(issued.serial);
    const shown = await cli.text('certificates', 'show', issued.serial);
    expect(shown).to.match(/^subject: +CN=admin-device-17$/m);
    expect(shown).to.match(/^sans: +\["DNS:admin-device-17.line3.local"\]$/m);
    expect(shown).to.match(new RegExp(`^request_id: +${issued.requestId}$`, 'm'));
    expect(shown).to.match(/^not_after: +\d{4}-/m);
    // openssl prints serials in upper case, with a colon-free hex: both are accepted.
    expect(await cli.text('certificates', 'show', issued.serial.toUpperCase(), '--pem')).to.equal(issued.pem);
  });

  it('ok audit export: JSON lines, oldest first, with the request, the counted refusal and what happened to passcodes', async () => {
    const [changed] = await cli.json<{ id: string }>('passcodes', 'create', '--policy', 'demo');
    expect((await cli.json('passcodes', 'disable', changed!.id))[0]).to.include({ id: changed!.id, status: 'disabled' });
    expect((await cli.json('passcodes', 'enable', changed!.id))[0]).to.include({ id: changed!.id, status: 'enabled' });
    const [rotated] = await cli.json('passcodes', 'rotate', changed!.id);
    expect(rotated).to.include({ id: changed!.id, status: 'enabled' });
    expect(rotated!.passcode).to.match(/^[A-Za-z0-9]{24}$/);
    // Always JSON lines; --json is accepted as by every other command.
    const events = await cli.json<{ type: string; at: string } & Record<string, unknown>>('audit', 'export');
    const times = events.map((e) => e.at);
    expect(times).to.deep.equal([...times].sort());
    expect(events.find((e) => e.type === 'request' && e.serial === issued.serial)).to.include({ outcome: 'issued', id: issued.requestId });
    expect(events.find((e) => e.type === 'passcode_created' && e.passcode_id === passcode.id)).to.include({ policy: 'demo', max_uses: 5 });
    expect(events.filter((e) => e.passcode_id === changed!.id).map((e) => e.type)).to.deep.equal([
      'passcode_created',
      'passcode_disabled',
      'passcode_enabled',
      'passcode_rotated',
    ]);
    const wrong = events.find((e) => e.type === 'refusals_counted');
    expect(wrong).to.include({ peer_address: '127.0.0.1', status: 401 });
    expect(JSON.stringify(events)).not.to.contain(passcode.passcode);
    const later = await cli.text('audit', 'export', '--since', '2099-01-01');
    expect(later).to.equal('');
  });

  it('ok store stats --json and check-config --json', async () => {
    const [stats] = await cli.json('store', 'stats', '--refusals', '5');
    expect(stats).to.include({ retention_days: 90 });
    expect(stats!.certificates).to.be.greaterThan(0);
    expect(stats!.refusals_counted).to.be.greaterThan(0);
    expect((stats!.refusals as { code: string }[]).map((r) => r.code)).to.include('EST_AUTH_FAILED');
    expect((await cli.json('check-config'))[0]).to.deep.include({ ok: true, profiles: ['demo'] });
  });

  it('ok store check: ok beside the running est-ra; a damaged page: the problem and exit status 1', async () => {
    expect(await cli.text('store', 'check')).to.equal('ok\n');
    expect((await cli.json('store', 'check'))[0]).to.deep.equal({ ok: true, problems: [] });
    const damaged = join(ra.dir, 'damaged');
    await mustRun(process.execPath, [CLI, 'init', '--state-dir', damaged]);
    // A b-tree page whose header is garbage: SQLite's integrity_check names it.
    const file = join(damaged, 'est-ra.db');
    const bytes = readFileSync(file);
    bytes[3 * 4096] = 0x0d; // a table leaf page, with a header of 0xff bytes
    bytes.fill(0xff, 3 * 4096 + 1, 3 * 4096 + 40);
    writeFileSync(file, bytes);
    const result = await adminCli(join(damaged, 'config.yaml')).run('store', 'check');
    expect(result.code, result.stdout + result.stderr).to.equal(1);
    expect(result.stdout + result.stderr).to.match(/page \d+|malformed/);
    expect(result.stdout + result.stderr).not.to.match(/^ok$|\n\s+at /m);
  });

  it('ok store prune runs retention by hand: the configured retention_days by default, or --older-than / --before', async () => {
    const asked = Date.now();
    const [byDefault] = await cli.json<{ before: string; rows: number }>('store', 'prune');
    expect(Date.parse(byDefault!.before) + 90 * 86_400_000).to.be.within(asked, Date.now());
    expect(byDefault!.rows, 'nothing here is 90 days old').to.equal(0);
    const [stats] = await cli.json('store', 'stats');
    expect(stats!.certificates).to.be.greaterThan(0);
    const both = await cli.run('store', 'prune', '--before', '2026-01-01', '--older-than', '30d');
    expect(both).to.include({ code: 1, stderr: 'est-ra: give --before or --older-than, not both\n' });
    expect((await cli.run('store', 'prune', '--older-than', 'soon')).stderr).to.equal('est-ra: --older-than soon: give a duration such as 90d, 12w or 24h\n');
  });

  it('ok a closed pipe ends quietly: passcodes list --json | head -1 exits 0 without a stack', async () => {
    // More than a pipe buffer (64 KiB) of lines after the one head reads, so est-ra is still writing when head has gone.
    const config = join(ra.dir, 'config.yaml');
    for (let i = 0; i < 4; i++) await cli.text('passcodes', 'create', '--policy', 'demo', '--description', `${i}`.repeat(60_000));
    const result = await sh(`set -o pipefail; ${process.execPath} ${CLI} passcodes list --json --config ${config} | head -1`, ra.dir);
    expect(result.stderr).to.equal('');
    expect(result.code).to.equal(0);
    expect(JSON.parse(result.stdout)).to.have.property('id');
  });
});

describe('est-ra passcodes create --expires', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  let cli: ReturnType<typeof adminCli>;
  const setTimeZone = (zone: string): void => {
    const file = join(ra.dir, 'config.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^(# )?time_zone: .*$/m, `time_zone: ${zone}`));
  };
  const expiresAt = async (...args: string[]): Promise<unknown> => (await cli.json('passcodes', 'create', '--policy', 'demo', ...args))[0]!.expires_at;

  before(async () => {
    ra = await startEstRa();
    cli = adminCli(join(ra.dir, 'config.yaml'));
  });
  after(async () => ra.close());

  it('ok a date is the end of that day in the configured time zone; a time is that time there', async () => {
    setTimeZone('Europe/Berlin');
    // Berlin is UTC+1 in January: the day ends at 23:00 UTC.
    expect(await expiresAt('--expires', '2099-01-15')).to.equal('2099-01-15T23:00:00.000Z');
    expect(await expiresAt('--expires', '2099-01-15T12:00')).to.equal('2099-01-15T11:00:00.000Z');
    // and UTC+2 in July.
    expect(await expiresAt('--expires', '2099-07-15')).to.equal('2099-07-15T22:00:00.000Z');
    setTimeZone('Pacific/Kiritimati');
    expect(await expiresAt('--expires', '2099-03-31')).to.equal('2099-03-31T10:00:00.000Z');
    expect(await expiresAt('--expires', '2099-03-31T12:00:00Z')).to.equal('2099-03-31T12:00:00.000Z');
  });

  it('fail a past date or a malformed one is refused with one line; --help says what a date means', async () => {
    const past = await cli.run('passcodes', 'create', '--policy', 'demo', '--expires', '2020-01-01');
    expect(past.code).to.equal(1);
    expect(past.stderr).to.match(/^est-ra: --expires 2020-01-01 is in the past \(2020-01-0[12]T\d{2}:00:00.000Z\): give a future date\n$/);
    const bad = await cli.run('passcodes', 'create', '--policy', 'demo', '--expires', '2099-02-30');
    expect(bad.code).to.equal(1);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
    expect((await cli.json('passcodes', 'list')).filter((p) => p.description === '' && p.expires_at === null)).to.have.length(0);
    const help = await cli.text('passcodes', 'create', '--help');
    expect(help.replace(/\s+/g, ' ')).to.contain('means the END of that day');
    expect(help.replace(/\s+/g, ' ')).to.contain('a date in the past is refused');
  });
});
