import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr, type KeyAndCsr } from '../helpers/csr.js';
import { certsFromP7, curl, opensslVerify } from '../helpers/clients.js';
import { adminCli, type RequestJson } from '../helpers/admin-cli.js';
import { mustRun, run } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];
const DAY = 86_400_000;

/** An approval as `est-ra approvals list/show --json` gives it (docs/admin.md). */
interface ApprovalJson {
  id: string;
  profile: string;
  operation: string;
  state: string;
  requested_at: string;
  expires_at: string;
  decided_at: string | null;
  decided_by: string | null;
  reason: string | null;
  subject: string | null;
  sans: string[];
  peer_address: string;
  principal: { kind: string; passcode_id?: string };
  request_outcome: string;
  serial: string | null;
}

const header = (headers: string, name: string): string | undefined => new RegExp(`^${name}: *(\\S+)`, 'im').exec(headers)?.[1];

/**
 * require_approval_for_enroll / _renew against a real est-ra: curl and
 * strongSwan's pki as devices, `est-ra approvals` as the administrator in its
 * own process on the same store. The clock is injected so an approval can
 * expire without sleeping.
 */
describe('approvals: requests wait for an administrator (require_approval_for_enroll, require_approval_for_renew)', function () {
  this.timeout(90_000);
  let ra: TestEstRa;
  let cli: ReturnType<typeof adminCli>;
  let offset = 0;

  before(async () => {
    ra = await startEstRa({
      now: () => new Date(Date.now() + offset),
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          const profiles = config.profiles as Record<string, Record<string, unknown>>;
          const demo = profiles.demo!;
          // Renewal only waits under line2; enrollment waits under demo (the bare path pki uses), told to come back in 2 s.
          profiles.line2 = { ...structuredClone(demo), default: false, labels: ['line2'], require_approval_for_renew: true, approval_retry_after_s: 45 };
          // line3: approvals that expire a second after they are asked for, on the real clock.
          profiles.line3 = { ...structuredClone(demo), default: false, labels: ['line3'], require_approval_for_enroll: true, approval_expires_after: '1s' };
          Object.assign(demo, { require_approval_for_enroll: true, approval_retry_after_s: 2 });
        }),
    });
    cli = adminCli(join(ra.dir, 'config.yaml'));
  });
  after(async () => ra.close());

  const createPasscode = async (maxUses: number): Promise<{ id: string; passcode: string }> =>
    (await cli.json<{ id: string; passcode: string }>('passcodes', 'create', '--policy', 'demo', '--max-uses', String(maxUses)))[0]!;
  const usesOf = async (id: string): Promise<number> =>
    (await cli.json<{ id: string; uses_count: number }>('passcodes', 'list')).find((p) => p.id === id)!.uses_count;
  const enroll = (path: string, csr: KeyAndCsr, auth: readonly string[]): ReturnType<typeof curl> =>
    curl(ra, path, [...auth, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`]);
  /** The request's state as an admin reads it, polled until `done` (the retry worker issues in the background). */
  const outcomeOnceSettled = (id: string, done: (outcome: string) => boolean): Promise<string> =>
    eventually(async () => {
      const [request] = await cli.json<RequestJson>('requests', 'show', id);
      return request && done(request.outcome) ? request.outcome : undefined;
    });

  it('ok curl gets 202 with the Retry-After configured; list shows it pending; approved by the CLI, the retry gets a certificate openssl verifies', async () => {
    const passcode = await createPasscode(1);
    const device = await opensslCsr(ra.dir, 'approve-me', { addext: ['subjectAltName=DNS:approve-me.line3.local'] });
    const first = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect(first.status).to.equal(202);
    expect(header(first.headers, 'Retry-After')).to.equal('2');
    expect(first.body).to.equal('202 request awaiting approval by an administrator\n');
    const id = header(first.headers, 'X-Request-Id')!;

    const pending = await cli.json<ApprovalJson>('approvals', 'list', '--state', 'pending');
    const mine = pending.find((a) => a.id === id);
    expect(mine).to.deep.include({
      profile: 'demo',
      operation: 'simpleenroll',
      state: 'pending',
      subject: 'CN=approve-me',
      sans: ['DNS:approve-me.line3.local'],
      peer_address: '127.0.0.1',
      decided_at: null,
      decided_by: null,
      request_outcome: 'awaiting_approval',
    });
    expect(mine!.principal).to.include({ kind: 'passcode', passcode_id: passcode.id });
    expect(Date.parse(mine!.expires_at) - Date.parse(mine!.requested_at)).to.equal(7 * DAY);
    const table = (await cli.text('approvals', 'list')).split('\n');
    expect(table[0]).to.match(/^ID +REQUESTED +PROFILE +OPERATION +STATE +SUBJECT +WHO +PEER +EXPIRES +DECIDED +REASON$/);
    const stateColumn = table[0]!.indexOf('STATE');
    expect(table.find((line) => line.startsWith(id))!.slice(stateColumn)).to.match(/^pending +CN=approve-me +passcode /);
    expect(await ra.server.metrics.registry.getSingleMetricAsString('est_ra_approvals_pending')).to.match(/^est_ra_approvals_pending\{profile="demo"\} 1$/m);

    // Retries while pending: 202 again, and no second passcode use (the passcode allows one).
    const again = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect([again.status, header(again.headers, 'Retry-After'), header(again.headers, 'X-Request-Id')]).to.deep.equal([202, '2', id]);
    expect(await usesOf(passcode.id)).to.equal(1);

    expect(await cli.text('approvals', 'approve', id, '--by', 'alice')).to.equal(
      `Request ${id} approved by alice: est-ra issues it now; the device gets the certificate at its next retry\n`,
    );
    await outcomeOnceSettled(id, (outcome) => outcome === 'issued');
    const retry = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect(retry.status).to.equal(200);
    const certFile = await certsFromP7(ra.dir, retry.body, 'approve-me-cert');
    expect(await opensslVerify(ra, certFile)).to.contain(': OK');
    expect(await usesOf(passcode.id)).to.equal(1);

    const [shown] = await cli.json<ApprovalJson>('approvals', 'show', id);
    expect(shown).to.include({ state: 'approved', decided_by: 'alice', request_outcome: 'issued' });
    expect(shown!.serial).to.match(/^[0-9a-f]+$/);
    const audit = (await cli.text('audit', 'export'))
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((event) => event.request_id === id);
    expect(audit.map((event) => event.type)).to.deep.equal(['approval_requested', 'approval_approved']);
    expect(audit[1]).to.include({ decided_by: 'alice', at: shown!.decided_at, profile: 'demo', operation: 'simpleenroll' });
    expect(await ra.server.metrics.registry.getSingleMetricAsString('est_ra_approvals_pending')).not.to.match(/profile="demo"\} [1-9]/);
  });

  it('fail rejected: every retry gets 403 with the reason, the passcode use is given back, and no second decision is taken', async () => {
    const passcode = await createPasscode(1);
    const device = await opensslCsr(ra.dir, 'reject-me');
    const first = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect(first.status).to.equal(202);
    const id = header(first.headers, 'X-Request-Id')!;
    const [rejected] = await cli.json<ApprovalJson>('approvals', 'reject', id, '--reason', 'not on the line 3 inventory');
    expect(rejected).to.include({ state: 'rejected', reason: 'not on the line 3 inventory', request_outcome: 'refused' });
    // Decided by the OS user running the command when --by is not given.
    expect(rejected!.decided_by).to.equal((await mustRun('id', ['-un'])).trim());
    expect(await usesOf(passcode.id)).to.equal(0);

    for (let i = 0; i < 2; i++) {
      const retry = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
      expect([retry.status, retry.body]).to.deep.equal([403, '403 request rejected by an administrator: not on the line 3 inventory\n']);
    }
    const [request] = await cli.json<RequestJson>('requests', 'show', id);
    expect(request).to.include({ outcome: 'refused', status: 403, reason: 'request rejected by an administrator: not on the line 3 inventory' });

    const approve = await cli.run('approvals', 'approve', id);
    expect(approve.code).to.equal(1);
    expect(approve.stderr).to.match(new RegExp(`^est-ra: cannot approve request ${id}: it was rejected by \\S+ at \\S+ \\(not on the line 3 inventory\\)\\n$`));
    const rejectAgain = await cli.run('approvals', 'reject', id, '--reason', 'twice');
    expect(rejectAgain.code).to.equal(1);
    expect(rejectAgain.stderr).to.contain(`cannot reject request ${id}: it was rejected by`);
    const unknown = await cli.run('approvals', 'approve', 'no-such-request');
    expect([unknown.code, unknown.stderr]).to.deep.equal([1, 'est-ra: no approval no-such-request: no request with this id waited for approval\n']);
  });

  it('fail an approved request cannot be approved again or rejected', async () => {
    const device = await opensslCsr(ra.dir, 'approve-twice');
    const first = await enroll('/simpleenroll', device, ['--user', `:${ra.passcode}`]);
    const id = header(first.headers, 'X-Request-Id')!;
    await cli.text('approvals', 'approve', id, '--by', 'bob');
    for (const args of [
      ['approve', id],
      ['reject', id, '--reason', 'too late'],
    ]) {
      const result = await cli.run('approvals', ...args);
      expect(result.code).to.equal(1);
      expect(result.stderr).to.match(new RegExp(`^est-ra: cannot ${args[0]!} request ${id}: it was approved by bob at \\S+\\n$`));
    }
    await outcomeOnceSettled(id, (outcome) => outcome === 'issued');
  });

  it('ok require_approval_for_renew: enrollment under line2 does not wait, its renewal does (Retry-After 45) until approved', async () => {
    const device = await opensslCsr(ra.dir, 'renew-approval', { subject: '/CN=renew-approval' });
    const enrolled = await enroll('/line2/simpleenroll', device, ['--user', `:${ra.passcode}`]);
    expect(enrolled.status).to.equal(200);
    const cert = await certsFromP7(ra.dir, enrolled.body, 'renew-approval-cert');

    const next = await opensslCsr(ra.dir, 'renew-approval-2', { subject: '/CN=renew-approval' });
    const renewal = ['--cert', cert, '--key', device.keyFile];
    const first = await enroll('/line2/simplereenroll', next, renewal);
    expect([first.status, header(first.headers, 'Retry-After')]).to.deep.equal([202, '45']);
    const id = header(first.headers, 'X-Request-Id')!;
    const [approval] = await cli.json<ApprovalJson>('approvals', 'list', '--profile', 'line2');
    expect(approval).to.include({ id, operation: 'simplereenroll', state: 'pending', subject: 'CN=renew-approval' });
    expect(approval!.principal).to.include({ kind: 'certificate' });

    await cli.text('approvals', 'approve', id);
    await outcomeOnceSettled(id, (outcome) => outcome === 'issued');
    const renewed = await enroll('/line2/simplereenroll', next, renewal);
    expect(renewed.status).to.equal(200);
    const renewedFile = await certsFromP7(ra.dir, renewed.body, 'renew-approval-renewed');
    expect(await opensslVerify(ra, renewedFile)).to.contain(': OK');
    const serial = (file: string): Promise<string> => mustRun('openssl', ['x509', '-in', file, '-noout', '-serial']);
    expect(await serial(renewedFile)).not.to.equal(await serial(cert));
  });

  it('ok strongSwan pki --est --interval 1 polls while pending and ends with the certificate once approved', async () => {
    const device = await opensslCsr(ra.dir, 'ss-approval', { subject: '/CN=ss-approval' });
    const polling = run('pki', [
      '--est',
      '--in',
      device.csrDerFile,
      '--userpass',
      `device:${ra.passcode}`,
      '--interval',
      '1',
      '--maxpolltime',
      '60',
      '--outform',
      'pem',
      '--url',
      `${ra.url}/`,
      '--cacert',
      ra.rootCaFile,
    ]);
    // pki is waiting: approve what it asked for, from here, as an admin would.
    const approval = await eventually(async () =>
      (await cli.json<ApprovalJson>('approvals', 'list', '--state', 'pending')).find((a) => a.subject === 'CN=ss-approval'),
    );
    await cli.text('approvals', 'approve', approval.id);
    const result = await polling;
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout + result.stderr).to.contain('EST request pending, polling every 2 seconds');
    const certFile = join(ra.dir, 'ss-approval.crt');
    writeFileSync(certFile, result.stdout.slice(result.stdout.indexOf('-----BEGIN CERTIFICATE-----')));
    expect(await opensslVerify(ra, certFile)).to.contain(': OK');
  });

  it('fail approval_expires_after: 1s: the admin commands record it expired once the time has passed, and the retry gets 403', async () => {
    const device = await opensslCsr(ra.dir, 'expire-short');
    const first = await enroll('/line3/simpleenroll', device, ['--user', `:${ra.passcode}`]);
    expect([first.status, header(first.headers, 'Retry-After')]).to.deep.equal([202, '60']);
    const id = header(first.headers, 'X-Request-Id')!;
    const expired = await eventually(async () =>
      (await cli.json<ApprovalJson>('approvals', 'list', '--profile', 'line3', '--state', 'expired')).find((a) => a.id === id),
    );
    expect(Date.parse(expired.expires_at) - Date.parse(expired.requested_at)).to.equal(1000);
    const retry = await enroll('/line3/simpleenroll', device, ['--user', `:${ra.passcode}`]);
    expect([retry.status, retry.body]).to.deep.equal([403, '403 approval expired\n']);
  });

  // Last: it moves the clock past every pending approval's expiry.
  it('fail an approval not decided in time expires: the retry gets 403 approval expired, the CLI shows it expired and refuses to approve it', async () => {
    const passcode = await createPasscode(1);
    const device = await opensslCsr(ra.dir, 'expire-me');
    const first = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect(first.status).to.equal(202);
    const id = header(first.headers, 'X-Request-Id')!;
    expect(await ra.server.metrics.registry.getSingleMetricAsString('est_ra_approvals_pending')).to.match(/profile="demo"\} 1$/m);

    offset = 7 * DAY + 60_000;
    expect(await ra.server.metrics.registry.getSingleMetricAsString('est_ra_approvals_pending')).not.to.match(/profile="demo"\} [1-9]/);
    const retry = await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`]);
    expect([retry.status, retry.body]).to.deep.equal([403, '403 approval expired\n']);
    expect(await usesOf(passcode.id)).to.equal(0);
    const expired = (await cli.json<ApprovalJson>('approvals', 'list', '--state', 'expired')).find((a) => a.id === id);
    expect(expired).to.include({ id, state: 'expired', decided_by: null, request_outcome: 'refused' });
    expect(expired!.decided_at).to.equal(expired!.expires_at);
    const approve = await cli.run('approvals', 'approve', id);
    expect([approve.code, approve.stderr]).to.deep.equal([
      1,
      `est-ra: cannot approve request ${id}: its approval expired at ${expired!.expires_at} without a decision\n`,
    ]);
    expect((await enroll('/simpleenroll', device, ['--user', `:${passcode.passcode}`])).status).to.equal(403);
  });
});
