import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { opensslSelfSigned } from './csr.js';
import { freePort } from './net.js';

const run = promisify(execFile);

/** A PostgreSQL server of the test's own, on a temporary data directory and a free loopback port. */
export interface TestPostgres {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** A file holding the password, as an admin gives it to est-ra (`password: { file: ... }`). */
  readonly passwordFile: string;
  readonly password: string;
  /** psql -tA as the test's superuser: the rows, `|`-separated, one per line (the server's own views, as an admin reads them). */
  query(sql: string, database?: string): Promise<string>;
  /** A new, empty database on this server; each test gets its own. */
  createDatabase(name: string): Promise<string>;
  /** The postmaster's process id (first line of postmaster.pid): the bench sums the CPU of it and its children. */
  postmasterPid(): number;
  /** With `tls`: the CA that issued the server's certificate (what `store.postgres.ssl.ca` names). */
  readonly caFile?: string;
  /** With `tls`: a new server certificate from the same CA with this subjectAltName (`IP:127.0.0.1`, `DNS:db.plant.example`), in force at once. */
  reissueServerCertificate(subjectAltName: string): Promise<void>;
  /** Stops the server (pg_ctl stop -m fast: every connection is closed), keeping its data, as an outage or a database restart does. */
  pause(): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
  stop(): Promise<void>;
}

/** The server binaries of the newest PostgreSQL Debian installed (package postgresql: /usr/lib/postgresql/<major>/bin). */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const majors = existsSync(root) ? readdirSync(root).filter((name) => /^\d+$/.test(name)) : [];
  const newest = majors.sort((a, b) => Number(b) - Number(a))[0];
  if (!newest) throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql; scripts/install-test-tools.sh does it)');
  return join(root, newest, 'bin');
}

/**
 * initdb and pg_ctl on a temporary directory: nothing assumes a running
 * service. PostgreSQL refuses to run as root, so as root (CI) the server
 * runs as the `postgres` user the Debian package creates. Password
 * authentication (scram-sha-256) over TCP, as a plant's database would ask.
 */
export async function startPostgres(options: { readonly tls?: boolean } = {}): Promise<TestPostgres> {
  const bin = binDir();
  const dir = mkdtempSync(join(tmpdir(), 'est-ra-pg-'));
  const data = join(dir, 'data');
  const password = `pw-${Math.random().toString(36).slice(2)}`;
  const passwordFile = join(dir, 'password');
  writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 });
  const asRoot = process.getuid?.() === 0;
  const serverPasswordFile = join(dir, 'initdb-password');
  writeFileSync(serverPasswordFile, password, { mode: 0o600 });
  const user = 'est_ra';
  const as = async (command: string, args: string[]): Promise<void> => {
    if (asRoot) await run('runuser', ['-u', 'postgres', '--', join(bin, command), ...args]);
    else await run(join(bin, command), args);
  };
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gidOut } = await run('id', ['-g', 'postgres']);
    owner = { uid: Number(stdout.trim()), gid: Number(gidOut.trim()) };
    chownSync(dir, owner.uid, owner.gid);
    chownSync(serverPasswordFile, owner.uid, owner.gid);
  }
  await as('initdb', ['-D', data, '-U', user, '--auth=scram-sha-256', `--pwfile=${serverPasswordFile}`, '--no-sync', '-E', 'UTF8', '--locale=C']);
  const port = await freePort();
  const settings = [`-c listen_addresses=127.0.0.1`, `-p ${port}`, `-k ${dir}`, '-c max_connections=200', '-c fsync=on'];
  const tls = options.tls ? await serverTls(dir, data, owner) : undefined;
  if (tls) settings.push('-c ssl=on', `-c ssl_cert_file=${tls.certFile}`, `-c ssl_key_file=${tls.keyFile}`);
  const start = (): Promise<void> => as('pg_ctl', ['-D', data, '-o', settings.join(' '), '-l', join(dir, 'server.log'), '-w', '-t', '60', 'start']);
  await start();
  const host = '127.0.0.1';
  const psql = async (sql: string, database = 'postgres'): Promise<string> => {
    const { stdout } = await run(join(bin, 'psql'), ['-h', host, '-p', String(port), '-U', user, '-d', database, '-v', 'ON_ERROR_STOP=1', '-tA', '-c', sql], {
      env: { ...process.env, PGPASSWORD: password },
    });
    return stdout;
  };
  return {
    host,
    port,
    user,
    password,
    passwordFile,
    query: psql,
    async createDatabase(name) {
      await psql(`CREATE DATABASE "${name}"`);
      return name;
    },
    caFile: tls?.caFile,
    async reissueServerCertificate(subjectAltName) {
      await tls!.issue(subjectAltName);
      // PostgreSQL reads its certificate files again on reload (SIGHUP).
      await as('pg_ctl', ['-D', data, 'reload']);
    },
    async pause() {
      await as('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
    },
    resume: start,
    postmasterPid: () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]),
    async stop() {
      await as('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']).catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A test CA and a server certificate for `ssl = on`, made with the openssl
 * command line, and a pg_hba.conf that takes TCP connections only over TLS
 * (hostnossl: reject), as a database across a plant network would. The
 * first certificate names IP:127.0.0.1, where the server listens.
 */
async function serverTls(
  dir: string,
  data: string,
  owner: { uid: number; gid: number } | undefined,
): Promise<{ caFile: string; certFile: string; keyFile: string; issue(subjectAltName: string): Promise<void> }> {
  const { certFile: caFile, keyFile: caKey } = await opensslSelfSigned(dir, 'db-ca', { subject: '/CN=est-ra test database CA', days: 2 });
  const certFile = join(dir, 'db-server.crt');
  const keyFile = join(dir, 'db-server.key');
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const issue = async (subjectAltName: string): Promise<void> => {
    const csr = join(dir, 'db-server.csr');
    const extensions = join(dir, 'db-server.ext');
    writeFileSync(extensions, `subjectAltName=${subjectAltName}\nextendedKeyUsage=serverAuth\n`);
    await run('openssl', ['req', '-new', ...ec, '-keyout', keyFile, '-out', csr, '-subj', '/CN=est-ra test database']);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      caFile,
      '-CAkey',
      caKey,
      '-CAcreateserial',
      '-out',
      certFile,
      '-days',
      '2',
      '-extfile',
      extensions,
    ]);
    // PostgreSQL refuses a key file others may read, and reads it as its own user.
    chmodSync(keyFile, 0o600);
    if (owner) for (const file of [keyFile, certFile]) chownSync(file, owner.uid, owner.gid);
  };
  await issue('IP:127.0.0.1');
  writeFileSync(
    join(data, 'pg_hba.conf'),
    ['local all all scram-sha-256', 'hostnossl all all 0.0.0.0/0 reject', 'hostssl all all 127.0.0.1/32 scram-sha-256', ''].join('\n'),
  );
  return { caFile, certFile, keyFile, issue };
}
