import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'chai';
import { startEstRa, type TestEstRa } from '../helpers/est-ra.js';
import { opensslCsr } from '../helpers/csr.js';
import { curl } from '../helpers/clients.js';
import { createPasscode } from '../helpers/passcodes.js';
import { latestRequest, storeStats } from '../helpers/admin-cli.js';

const PKCS10 = ['-H', 'Content-Type: application/pkcs10'];

/** The body of a PEM block, without its armour and line breaks. */
function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----|\s/g, '');
}

/**
 * Issue #10: passcodes, Authorization values and private keys appear in no
 * log line (at level debug), no database byte and no answer, however a
 * client sends them: as the password, as the username too (`--user P:P`),
 * lower-case `basic`, a near miss of a real one, or a private key pasted
 * into the CSR body (a common slip: `cat device.key device.csr | curl`).
 */
describe('secrets never reach a log, a database row or an answer (#10)', () => {
  let ra: TestEstRa;
  const answers: string[] = [];
  const secrets: { name: string; value: string }[] = [];

  before(async () => {
    // Usernames on, so the one place a username is kept is exercised too.
    ra = await startEstRa({ editConfig: (yaml) => yaml.replace('enable_username_for_passcode: false', 'enable_username_for_passcode: true') });
  });
  after(async () => ra.close());

  const send = async (path: string, args: string[]): Promise<number> => {
    const answer = await curl(ra, path, ['-i', ...args]);
    answers.push(answer.body);
    return answer.status;
  };

  it('ok a passcode sent in every way a client might: only its id is kept', async () => {
    const named = await createPasscode(ra, '--username', 'line1-gw');
    secrets.push({ name: 'demo passcode', value: ra.passcode }, { name: 'named passcode', value: named });
    for (const value of [ra.passcode, named]) {
      secrets.push(
        { name: 'Basic :P', value: Buffer.from(`:${value}`).toString('base64') },
        { name: 'Basic P:P', value: Buffer.from(`${value}:${value}`).toString('base64') },
        { name: 'Basic line1-gw:P', value: Buffer.from(`line1-gw:${value}`).toString('base64') },
      );
    }
    const nearMiss = `${ra.passcode.slice(0, -1)}${ra.passcode.endsWith('A') ? 'B' : 'A'}`;
    secrets.push({ name: 'near miss', value: nearMiss });

    const device = (name: string) => opensslCsr(ra.dir, name);
    let csr = await device('sec-1');
    expect(await send('/simpleenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(200);
    csr = await device('sec-2');
    expect(await send('/simpleenroll', ['--user', `line1-gw:${named}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(200);
    // The passcode as the username too: refused (the username does not match), and neither half is kept.
    csr = await device('sec-3');
    expect(await send('/simpleenroll', ['--user', `${named}:${named}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(401);
    csr = await device('sec-4');
    const lowerCase = `authorization: basic ${Buffer.from(`:${ra.passcode}`).toString('base64')}`;
    expect(await send('/simpleenroll', ['-H', lowerCase, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(200);
    csr = await device('sec-5');
    expect(await send('/simpleenroll', ['--user', `:${nearMiss}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(401);
    expect(await send('/simplereenroll', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.be.oneOf([401, 403]);
    expect(await send('/serverkeygen', ['--user', `:${ra.passcode}`, ...PKCS10, '--data-binary', `@${csr.csrPemFile}`])).to.equal(501);

    const latest = await latestRequest(ra);
    expect(JSON.stringify(latest?.principal)).not.to.contain(named);
  });

  it('fail a private key pasted in front of the CSR: whatever the answer, the key is kept nowhere', async () => {
    const csr = await opensslCsr(ra.dir, 'sec-key');
    const key = readFileSync(csr.keyFile, 'utf8');
    secrets.push({ name: 'device private key', value: pemBody(key).slice(0, 64) });
    const body = `${key}${csr.csrPem}`;
    const status = await send('/simpleenroll', ['--user', `:${ra.passcode}`, '-H', 'Content-Type: text/plain', '--data-binary', body]);
    expect(status).to.be.oneOf([200, 400]);
    // The RA's own keys: the issuing CA's and the TLS server's.
    for (const file of ['issuing-ca.key', 'server.key'])
      secrets.push({ name: file, value: pemBody(readFileSync(join(ra.dir, 'pki', file), 'utf8')).slice(0, 64) });
  });

  it('ok none of them in the log (level debug), the database file and its WAL, or an answer', async () => {
    // Each answer above was sent after its request's group commit, so the file and its WAL hold every write; they are there.
    expect((await storeStats(ra)).requests).to.be.greaterThan(0);
    const places = {
      log: ra.logs.join('\n'),
      answers: answers.join('\n'),
      database: ['est-ra.db', 'est-ra.db-wal']
        .map((file) => {
          try {
            return readFileSync(join(ra.dir, file)).toString('latin1');
          } catch {
            return '';
          }
        })
        .join(''),
    };
    expect(places.log).to.match(/"level":"debug"|"level":"info"/);
    for (const [place, text] of Object.entries(places))
      for (const secret of secrets) expect(text.includes(secret.value), `${secret.name} found in the ${place}`).to.equal(false);
    // Nor the passcodes' raw bytes in the database: only their hashes.
    const database = Buffer.from(places.database, 'latin1');
    for (const secret of secrets.slice(0, 2)) expect(database.includes(Buffer.from(secret.value, 'utf8')), secret.name).to.equal(false);
    expect(places.log).not.to.match(/authorization/i);
  });
});
