import { connect, type Socket } from 'node:net';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { editConfig } from '../helpers/config.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { eventually } from '../helpers/wait.js';
import { createPasscode } from '../helpers/passcodes.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** Issue #10 §1: one client holding connections cannot stop the others from enrolling. */
describe('connection fairness: a per-address share and a short handshake deadline', function () {
  this.timeout(60_000);
  let ra: TestEstRa;
  const sockets: Socket[] = [];

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.limits = { max_connections: 40, max_connections_per_address: 10, connections_reserve: 5, handshake_timeout_ms: 1000 };
        }),
    });
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await ra.close();
  });

  /** A plain TCP connection from `localAddress` that never starts TLS; resolves when it is open, with whether it was closed since. */
  const hold = (localAddress: string): Promise<Socket & { closedByServer?: boolean }> =>
    new Promise((resolve, reject) => {
      const socket: Socket & { closedByServer?: boolean } = connect({ host: '127.0.0.1', port: ra.port, localAddress }, () => resolve(socket));
      socket.on('close', () => (socket.closedByServer = true));
      socket.on('error', reject);
      sockets.push(socket);
    });

  it('#10 - ok an address holding its share of connections does not keep another address from enrolling', async () => {
    const held = await Promise.all(Array.from({ length: 15 }, () => hold('127.0.0.2')));
    // The server closes what is over the share; what it kept stays open.
    const closed = await eventually(() => {
      const n = held.filter((s) => s.closedByServer).length;
      return n >= 5 ? n : undefined;
    }, 5_000);
    expect(closed).to.equal(5);
    const device = await opensslCsr(ra.dir, 'fair-1');
    const answer = await curl(ra, '/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    expect(answer.status, answer.body).to.equal(200);
    expect(ra.logs.some((line) => line.includes('connection refused') && line.includes('127.0.0.2'))).to.equal(true);
  });

  it('#10 - ok a connection that never starts TLS is closed at the handshake deadline', async () => {
    const idle = await hold('127.0.0.3');
    await eventually(() => idle.closedByServer, 10_000);
    expect(ra.logs.some((line) => line.includes('TLS handshake refused') && line.includes('127.0.0.3'))).to.equal(true);
  });
});

describe('a budget of refused requests per address: 429 past it, others untouched', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({ editConfig: (yaml) => yaml.replace(/refusals_per_minute_per_address: \d+/, 'refusals_per_minute_per_address: 5') });
  });
  after(async () => ra.close());

  const wrongPasscode = async (from: string) => {
    const device = await opensslCsr(ra.dir, `budget-${from}`);
    return curl(ra, '/simpleenroll', ['--interface', from, '--user', ':wrong', ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
  };

  it('#10 - fail the sixth refused request in a minute from one address gets 429 with Retry-After; another address still gets its 401', async () => {
    for (let i = 0; i < 5; i++) expect((await wrongPasscode('127.0.0.4')).status).to.equal(401);
    const limited = await wrongPasscode('127.0.0.4');
    expect(limited.status).to.equal(429);
    expect(limited.headers).to.match(/\r\nRetry-After: \d+\r\n/);
    expect(limited.body).to.equal('429 too many refused requests from this address; retry later\n');
    expect((await wrongPasscode('127.0.0.5')).status).to.equal(401);
  });
});

describe('a budget of refused requests per passcode', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({ editConfig: (yaml) => yaml.replace(/refusals_per_minute_per_passcode: \d+/, 'refusals_per_minute_per_passcode: 3') });
  });
  after(async () => ra.close());

  it('#10 - fail a used-up passcode tried again and again gets 429 with Retry-After after its budget; another passcode is untouched', async () => {
    const spent = await createPasscode(ra, '--max-uses', '1');
    const enrollWith = async (passcode: string, name: string) => {
      const device = await opensslCsr(ra.dir, name);
      return curl(ra, '/simpleenroll', ['--user', `:${passcode}`, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    };
    expect((await enrollWith(spent, 'pb-0')).status).to.equal(200);
    for (let i = 1; i <= 3; i++) expect((await enrollWith(spent, `pb-${i}`)).status).to.equal(401);
    const limited = await enrollWith(spent, 'pb-4');
    expect(limited.status).to.equal(429);
    expect(limited.headers).to.match(/\r\nRetry-After: \d+\r\n/);
    expect(limited.body).to.equal('429 too many refused requests with this passcode; retry later\n');
    expect((await enrollWith(ra.passcode, 'pb-other')).status).to.equal(200);
  });
});

describe('an address past its refusal budget: each 429 held, its request lines throttled', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.limits = { refusals_per_minute_per_address: 2, refused_answer_delay_ms: 3000 };
        }),
    });
  });
  after(async () => ra.close());

  it('#10 - fail a 429 past the budget comes only after the delay, while another address is answered at once; one request line per minute for the 429s', async () => {
    const device = await opensslCsr(ra.dir, 'held');
    const wrongPasscode = (from: string) =>
      curl(ra, '/simpleenroll', ['--interface', from, '--user', ':wrong', ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    for (let i = 0; i < 2; i++) expect((await wrongPasscode('127.0.0.6')).status).to.equal(401);

    let answered = false;
    const held = Promise.all([wrongPasscode('127.0.0.6'), wrongPasscode('127.0.0.6'), wrongPasscode('127.0.0.6')]).finally(() => (answered = true));
    // Sent after the held ones, answered before them: the 429s wait, and nobody else waits for them.
    expect((await wrongPasscode('127.0.0.7')).status).to.equal(401);
    expect(answered).to.equal(false);
    for (const limited of await held) {
      expect(limited.status).to.equal(429);
      expect(limited.headers).to.match(/\r\nRetry-After: \d+\r\n/);
    }
    const requestLines = ra.logs.filter((line) => line.includes('"est request"') && line.includes('127.0.0.6'));
    expect(requestLines.filter((line) => line.includes('"status":429'))).to.have.length(1);
    expect(requestLines.filter((line) => line.includes('"status":401'))).to.have.length(2);
  });
});

describe('requests without credentials: a budget of their own', function () {
  this.timeout(60_000);
  let ra: TestEstRa;

  before(async () => {
    ra = await startEstRa({
      editConfig: (yaml) =>
        editConfig(yaml, (config) => {
          config.limits = { refusals_per_minute_per_address: 1, refused_answer_delay_ms: 0 };
        }),
    });
  });
  after(async () => ra.close());

  it('#10 - fail past ten times the refusal budget, requests without credentials from one address get 429; another address still gets its challenge', async () => {
    const device = await opensslCsr(ra.dir, 'no-credential');
    const noCredential = (from: string) => curl(ra, '/simpleenroll', ['--interface', from, ...PKCS10, '--data-binary', `@${device.csrPemFile}`]);
    for (let i = 0; i < 10; i++) expect((await noCredential('127.0.0.8')).status).to.equal(401);
    const limited = await noCredential('127.0.0.8');
    expect(limited.status).to.equal(429);
    expect(limited.headers).to.match(/\r\nRetry-After: \d+\r\n/);
    const other = await noCredential('127.0.0.9');
    expect(other.status).to.equal(401);
    expect(other.headers).to.match(/\r\nWWW-Authenticate: Basic/i);
  });
});
