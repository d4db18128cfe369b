import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse } from 'yaml';
import { freePort } from '../helpers/net.js';
import { mustRun, run, sh } from '../helpers/run.js';
import { eventually } from '../helpers/wait.js';
import { certsFromP7 } from '../helpers/clients.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const { version } = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
const DEB = join(REPO, 'release', `est-ra_${version}_amd64.deb`);
const TARBALL = join(REPO, 'release', `est-ra-${version}-linux-x64.tar.gz`);
const UNIT = '/lib/systemd/system/est-ra.service';
const STATE = '/var/lib/est-ra';
/** Written into /var/lib/est-ra once this spec installed the package: only such a state directory is ever deleted. */
const MARKER = join(STATE, '.made-by-est-ra-package-test');
/**
 * System calls est-ra makes that the unit's filter refuses (EPERM), and est-ra
 * works without: V8 asks for a memory protection key (pkey_alloc, not in
 * systemd 252's @system-service) and carries on without one when refused.
 */
const REFUSED_AND_TOLERATED = new Set(['pkey_alloc']);

/** The [Service] settings of a unit file, each key with its values in order. */
function unitSettings(file: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let section = '';
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const header = /^\[(\w+)\]$/.exec(line.trim());
    if (header) section = header[1]!;
    const setting = /^(\w+)=(.*)$/.exec(line);
    if (section === 'Service' && setting) settings.set(setting[1]!, [...(settings.get(setting[1]!) ?? []), setting[2]!]);
  }
  return settings;
}

/** Every system call in a `systemd-analyze syscall-filter` group, nested groups expanded. */
async function syscallGroup(name: string): Promise<Set<string>> {
  const groups = new Map<string, string[]>();
  let current = '';
  for (const line of (await mustRun('systemd-analyze', ['syscall-filter'])).split('\n')) {
    if (line.startsWith('@')) groups.set((current = line.trim()), []);
    else if (/^\s+[@\w]/.test(line)) groups.get(current)?.push(line.trim());
  }
  const expand = (group: string, into: Set<string>): Set<string> => {
    for (const member of groups.get(group) ?? []) {
      if (member.startsWith('@')) expand(member, into);
      else into.add(member);
    }
    return into;
  };
  return expand(name, new Set());
}

/** The system calls the unit's SystemCallFilter= lines allow: allow lists joined, then `~` deny lists taken out. */
async function allowedSyscalls(filters: readonly string[]): Promise<Set<string>> {
  const allowed = new Set<string>();
  const denied = new Set<string>();
  for (const filter of filters) {
    const deny = filter.startsWith('~');
    for (const item of filter.replace(/^~/, '').split(/\s+/)) {
      const names = item.startsWith('@') ? await syscallGroup(item) : new Set([item]);
      for (const name of names) (deny ? denied : allowed).add(name);
    }
  }
  return new Set([...allowed].filter((name) => !denied.has(name)));
}

/** A process started as the unit would, with its stdout (JSON log lines) collected. */
interface Started {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  output(): string;
}

function start(command: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv; stdin?: 'pipe' }): Started {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: [options.stdin ?? 'ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

function logLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Waits for est-ra to log `message`; fails with everything it printed. */
async function waitForLog(service: Started, message: string): Promise<void> {
  await eventually(() => (service.output().includes(`"message":"${message}"`) ? true : undefined)).catch(() => {
    throw new Error(`est-ra did not log "${message}":\n${service.output()}`);
  });
}

/** The node process the est-ra user runs: what systemd's SIGTERM reaches (the wrapper execs it). */
async function estRaNodePid(): Promise<number> {
  return eventually(async () => {
    const found = await run('pgrep', ['-u', 'est-ra', '-x', 'node']);
    const pids = found.stdout.trim().split('\n').filter(Boolean);
    return pids.length === 1 ? Number(pids[0]) : undefined;
  });
}

/** Ends what the est-ra user runs (only this spec's processes: it made the user) and waits for the service to exit. */
async function killEstRaProcesses(service: Started | undefined): Promise<void> {
  const pids = (await run('pgrep', ['-u', 'est-ra'])).stdout.trim().split('\n').filter(Boolean);
  for (const pid of pids) process.kill(Number(pid), 'SIGKILL');
  if (service) await service.exited;
}

/** Removes the package, and the state and user this spec made (dpkg -P keeps those on purpose). */
async function removeEverything(): Promise<void> {
  await run('dpkg', ['-P', 'est-ra']);
  if (existsSync(MARKER)) rmSync(STATE, { recursive: true, force: true });
  rmSync('/etc/est-ra', { recursive: true, force: true });
  if ((await run('getent', ['passwd', 'est-ra'])).code === 0) await mustRun('deluser', ['--quiet', '--system', 'est-ra']);
  if ((await run('getent', ['group', 'est-ra'])).code === 0) await mustRun('delgroup', ['--quiet', '--system', 'est-ra']);
}

/**
 * The air-gapped install, for real: `npm run package` builds the .deb (in
 * before(): 2-4 minutes, most of it compiling better-sqlite3), dpkg installs it
 * on this machine, est-ra runs as the est-ra user the way the unit runs it, a
 * device enrolls with curl, and dpkg removes it. Needs root (CI runs as root).
 */
describe('the Debian package: npm run package, dpkg -i, the unit as est-ra, dpkg -r and -P', function () {
  this.timeout(120_000);
  let tmp: string;
  let port: number;
  let configFile: string;
  let rootCaFile: string;
  let issuingCaFile: string;
  let policy: string;
  let service: Started | undefined;
  let forceDepends: string[] = [];
  /** A test that failed half-way leaves no est-ra running for the next one. */
  const stopService = async (): Promise<void> => {
    if (service && service.child.exitCode === null && service.child.signalCode === null) await killEstRaProcesses(service);
    service = undefined;
  };

  before(async function () {
    if (process.getuid?.() !== 0) {
      console.log('      skipped: installing a Debian package needs root (CI runs these tests as root)');
      this.skip();
    }
    if (existsSync(STATE) && !existsSync(MARKER)) {
      throw new Error(`${STATE} exists and was not made by this test: refusing to install over (and later delete) a real est-ra`);
    }
    this.timeout(20 * 60_000);
    await removeEverything();
    tmp = mkdtempSync(join(tmpdir(), 'est-ra-package-'));
    port = await freePort();
    // EST_RA_REUSE_PACKAGE=1 (never in CI) tests the .deb already in release/, to iterate on this spec alone.
    if (process.env.EST_RA_REUSE_PACKAGE === '1' && existsSync(DEB)) return;
    const built = await run('npm', ['run', 'package'], { cwd: REPO });
    expect(built.code, built.stderr + built.stdout).to.equal(0);
  });

  after(async function () {
    this.timeout(60_000);
    if (process.getuid?.() !== 0) return;
    await stopService();
    if (existsSync(STATE) && !existsSync(MARKER)) return;
    await removeEverything();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('ok the .deb depends on Node >= 20.19 and holds the program, production dependencies only, the unit and the docs', async () => {
    expect((await mustRun('dpkg-deb', ['-f', DEB, 'Depends'])).trim()).to.equal('nodejs (>= 20.19), adduser');
    const info = await mustRun('dpkg-deb', ['-I', DEB]);
    for (const script of ['postinst', 'prerm', 'postrm']) expect(info).to.match(new RegExp(`\\s${script}\\s`));
    const files = (await mustRun('dpkg-deb', ['-c', DEB])).split('\n').map((line) => line.split(/\s+/).slice(5).join(' '));
    for (const path of [
      './usr/bin/est-ra',
      './usr/lib/est-ra/package.json',
      './usr/lib/est-ra/dist/src/cli/main.js',
      './usr/lib/est-ra/node_modules/better-sqlite3/build/Release/better_sqlite3.node',
      './lib/systemd/system/est-ra.service',
      './usr/share/doc/est-ra/README.md',
      './usr/share/doc/est-ra/install.md',
      './usr/share/doc/est-ra/copyright',
    ]) {
      expect(files).to.include(path);
    }
    const program = files.filter((path) => path.startsWith('./usr/lib/est-ra/dist/'));
    expect(
      program.filter((path) => path !== './usr/lib/est-ra/dist/' && !path.startsWith('./usr/lib/est-ra/dist/src/')),
      'only dist/src',
    ).to.deep.equal([]);
    expect(
      program.filter((path) => /\.(ts|map)$|\.spec\./.test(path)),
      'no tests, sources or maps',
    ).to.deep.equal([]);
    // package-lock.json marks every package only devDependencies need (`"dev": true`): none may be installed.
    const lock = JSON.parse(readFileSync(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const devOnly = Object.entries(lock.packages).flatMap(([path, entry]) => (entry.dev ? [`./usr/lib/est-ra/${path}/`] : []));
    expect(devOnly).to.include('./usr/lib/est-ra/node_modules/mocha/');
    expect(files.filter((path) => devOnly.includes(path))).to.deep.equal([]);
    // No private key anywhere in the package (test PKIs are made at test time, never shipped).
    const extracted = join(tmp, 'deb');
    await mustRun('dpkg-deb', ['-x', DEB, extracted]);
    const keys = await run('grep', ['-rlE', 'PRIVATE KEY-----', extracted]);
    expect(keys.stdout, 'files holding a private key').to.equal('');
    const tarball = (await mustRun('tar', ['-tzf', TARBALL])).split('\n');
    expect(tarball).to.include.members([
      `est-ra-${version}-linux-x64/INSTALL`,
      `est-ra-${version}-linux-x64/usr/bin/est-ra`,
      `est-ra-${version}-linux-x64/usr/lib/est-ra/node_modules/better-sqlite3/build/Release/better_sqlite3.node`,
      `est-ra-${version}-linux-x64/lib/systemd/system/est-ra.service`,
    ]);
  });

  it('ok dpkg -i creates the est-ra user, /var/lib/est-ra and /etc/est-ra, and starts nothing', async () => {
    // CI's Node may come from the official tarball in /usr/local, which dpkg does not know:
    // then `Depends: nodejs` cannot be met by a package, and --force-depends says so explicitly.
    const nodejs = await run('dpkg-query', ['-W', '-f', '${Status} ${Version}', 'nodejs']);
    const packaged = /^install ok installed (\S+)$/.exec(nodejs.stdout);
    const met = packaged !== null && (await run('dpkg', ['--compare-versions', packaged[1]!, 'ge', '20.19'])).code === 0;
    forceDepends = met ? [] : ['--force-depends'];
    const installed = await run('dpkg', ['-i', ...forceDepends, DEB]);
    expect(installed.code, installed.stderr).to.equal(0);
    writeFileSync(MARKER, '');

    const [, , uid, , , home, shell] = (await mustRun('getent', ['passwd', 'est-ra'])).trim().split(':');
    expect(Number(uid)).to.be.below(1000);
    expect([home, shell]).to.deep.equal([STATE, '/usr/sbin/nologin']);
    const owner = async (path: string): Promise<string> => (await mustRun('stat', ['-c', '%a %U:%G', path])).trim();
    expect(await owner(STATE)).to.equal('750 est-ra:est-ra');
    expect(await owner('/etc/est-ra')).to.equal('750 root:est-ra');
    expect(readdirSync('/etc/est-ra'), 'no configuration written').to.deep.equal([]);
    expect((await run('pgrep', ['-u', 'est-ra'])).code, 'no est-ra process').to.equal(1);
    expect((await mustRun('/usr/bin/est-ra', ['--version'])).trim()).to.equal(version);
  });

  it('ok a missing configuration fails at once, naming the file and the reason', async () => {
    const result = await run('runuser', ['-u', 'est-ra', '--', '/usr/bin/est-ra', 'serve', '--config', '/etc/est-ra/config.yaml']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(
      /^\/etc\/est-ra\/config\.yaml: invalid configuration\n\s+cannot read: ENOENT \(no such file or directory\) as user est-ra\n$/,
    );
  });

  it('ok the state is created as docs/install.md says, and check-config accepts it', async () => {
    // The admin's commands, exactly as docs/install.md prints them, on a free port instead of 8443.
    const docs = readFileSync(join(REPO, 'docs', 'install.md'), 'utf8');
    const block = /## \d+\. Create the state[\s\S]*?```sh\n([\s\S]*?)```/.exec(docs)![1]!;
    const result = await sh(block.replaceAll('8443', String(port)), tmp);
    expect(result.code, result.stderr + result.stdout).to.equal(0);
    expect(result.stdout).to.contain(`${STATE}/config.yaml: OK`);
    rootCaFile = /^Trust anchor for clients: (\S+)$/m.exec(result.stdout)![1]!;
    configFile = '/etc/est-ra/config.yaml';
    const config = parse(readFileSync(configFile, 'utf8')) as { authentication_policies: Record<string, unknown>; listen: { port: number } };
    expect(config.listen.port).to.equal(port);
    policy = Object.keys(config.authentication_policies)[0]!;
    issuingCaFile = join(STATE, 'pki', 'issuing-ca.crt');
    expect((await mustRun('stat', ['-c', '%U', join(STATE, 'est-ra.db')])).trim()).to.equal('est-ra');
  });

  /** A one-use passcode, made with the admin CLI as the est-ra user. */
  async function passcode(): Promise<string> {
    const made = await mustRun('runuser', [
      '-u',
      'est-ra',
      '--',
      'est-ra',
      'passcodes',
      'create',
      '--config',
      configFile,
      '--policy',
      policy,
      '--max-uses',
      '1',
    ]);
    return /: (\S+)$/.exec(made.trim())![1]!;
  }

  /** curl enrolls a fresh key, as a device would; returns the certificate file. */
  async function enroll(name: string, secret: string): Promise<string> {
    const csr = join(tmp, `${name}.csr`);
    await mustRun('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(tmp, `${name}.key`),
      '-subj',
      `/CN=${name}`,
      '-out',
      csr,
    ]);
    const body = await mustRun('curl', [
      '-sS',
      '--fail-with-body',
      '--cacert',
      rootCaFile,
      '-u',
      `:${secret}`,
      '-H',
      'Content-Type: application/pkcs10',
      '--data-binary',
      `@${csr}`,
      `https://127.0.0.1:${port}/.well-known/est/simpleenroll`,
    ]);
    const pem = await certsFromP7(tmp, body, name);
    expect((await mustRun('openssl', ['verify', '-CAfile', rootCaFile, '-untrusted', issuingCaFile, pem])).trim()).to.equal(`${pem}: OK`);
    return pem;
  }

  it('ok the unit ExecStart line, run as the est-ra user, serves EST: curl enrolls; SIGTERM lets the request in flight finish', async () => {
    await stopService();
    const unit = unitSettings(UNIT);
    const [command, ...args] = unit.get('ExecStart')![0]!.split(' ');
    expect(unit.get('User')).to.deep.equal(['est-ra']);
    const env: NodeJS.ProcessEnv = { ...process.env, ...Object.fromEntries(unit.get('Environment')!.map((e) => e.split('=') as [string, string])) };
    service = start('runuser', ['-u', 'est-ra', '--', command!, ...args], { cwd: unit.get('WorkingDirectory')![0]!, env });
    await waitForLog(service, 'listening');
    await enroll('sensor-1', await passcode());

    // A request in flight at SIGTERM: curl sent the headers with `Expect: 100-continue` (an upload of
    // unknown size) and est-ra answered `100 Continue`; the CSR follows after est-ra was told to stop.
    const csr = join(tmp, 'sensor-2.csr');
    await mustRun('openssl', [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(tmp, 'sensor-2.key'),
      '-subj',
      '/CN=sensor-2',
      '-out',
      csr,
    ]);
    const secret = await passcode();
    const url = `https://127.0.0.1:${port}/.well-known/est/simpleenroll`;
    const inFlight = start(
      'curl',
      [
        '-sS',
        '-v',
        '-o',
        join(tmp, 'sensor-2.p7'),
        '-w',
        '%{http_code}',
        '--cacert',
        rootCaFile,
        '-u',
        `:${secret}`,
        '-H',
        'Content-Type: application/pkcs10',
        '-X',
        'POST',
        '-T',
        '-',
        url,
      ],
      {
        cwd: tmp,
        env: process.env,
        stdin: 'pipe',
      },
    );
    await eventually(() => (inFlight.output().includes('< HTTP/1.1 100 Continue') ? true : undefined));
    process.kill(await estRaNodePid(), 'SIGTERM');
    await waitForLog(service, 'stopping');
    inFlight.child.stdin!.end(readFileSync(csr));
    expect(await inFlight.exited, inFlight.output()).to.equal(0);
    expect(inFlight.output().endsWith('200'), inFlight.output()).to.equal(true);
    expect(await service.exited, service.output()).to.equal(0);
    // stdout is not a terminal: every line is JSON, for journald.
    const lines = logLines(service.output());
    expect(lines.filter((l) => l.operation === 'simpleenroll').map((l) => l.status)).to.deep.equal([200, 200]);
  });

  it('ok inside the unit sandbox as far as it is reproduced without systemd: only allowed system calls, address families and /proc', async () => {
    // systemd is not PID 1 here, so the unit cannot run. What the sandbox would refuse is reproduced:
    // - SystemCallFilter=: strace answers every system call outside the unit's allowed set with EPERM,
    //   as the seccomp filter would (SystemCallErrorNumber=EPERM), and records which were made;
    // - ProtectProc=invisible + ProcSubset=pid: a private /proc mounted with hidepid=invisible,subset=pid.
    await stopService();
    const unit = unitSettings(UNIT);
    expect(unit.get('ProtectProc')).to.deep.equal(['invisible']);
    expect(unit.get('ProcSubset')).to.deep.equal(['pid']);
    expect(unit.get('SystemCallErrorNumber')).to.deep.equal(['EPERM']);
    const allowed = await allowedSyscalls(unit.get('SystemCallFilter')!);
    const families = unit.get('RestrictAddressFamilies')![0]!.split(' ');
    const opsPort = await freePort();
    appendFileSync(join(STATE, 'config.yaml'), `\nops:\n  listen: { host: 127.0.0.1, port: ${opsPort} }\n`);
    const traceDir = join(tmp, 'trace');
    chmodSync(tmp, 0o711); // est-ra may pass through to its own trace directory
    await mustRun('install', ['-d', '-o', 'est-ra', '-m', '0700', traceDir]);
    const trace = join(traceDir, 'syscalls');
    const [command, ...args] = unit.get('ExecStart')![0]!.split(' ');
    // `?name`: systemd's groups also name other architectures' system calls, unknown to strace here.
    const strace = [
      'strace',
      '-f',
      '-qq',
      '-o',
      trace,
      '-e',
      `inject=!${[...allowed].map((name) => `?${name}`).join(',')}:error=EPERM`,
      '--',
      command!,
      ...args,
    ];
    const sandboxed = `mount -t proc -o hidepid=invisible,subset=pid proc /proc && exec runuser -u est-ra -- ${strace.map((arg) => `'${arg}'`).join(' ')}`;
    service = start('unshare', ['--mount', '--pid', '--fork', '--', 'sh', '-c', sandboxed], { cwd: STATE, env: { ...process.env, NODE_ENV: 'production' } });
    await waitForLog(service, 'listening');
    await enroll('sensor-3', await passcode());
    // prom-client's process metrics read /proc/self: still there under ProcSubset=pid.
    const metrics = await mustRun('curl', ['-sS', '--fail', `http://127.0.0.1:${opsPort}/metrics`]);
    expect(metrics).to.match(/^est_ra_process_resident_memory_bytes [1-9]/m);
    process.kill(await estRaNodePid(), 'SIGTERM');
    expect(await service.exited, service.output()).to.equal(0);

    const calls = readFileSync(trace, 'utf8').split('\n');
    const made = new Set(calls.flatMap((line) => /^\d+\s+([a-z0-9_]+)\(/.exec(line)?.[1] ?? []));
    expect(made.size, 'strace saw est-ra work').to.be.above(30);
    const refused = new Set(calls.flatMap((line) => (line.includes('(INJECTED)') ? (/^\d+\s+([a-z0-9_]+)\(/.exec(line)?.[1] ?? []) : [])));
    expect(
      [...refused].filter((name) => !REFUSED_AND_TOLERATED.has(name)),
      'system calls the filter would refuse',
    ).to.deep.equal([]);
    const socketFamilies = new Set(calls.flatMap((line) => /\ssocket\((AF_\w+)/.exec(line)?.[1] ?? []));
    expect(
      [...socketFamilies].filter((family) => !families.includes(family)),
      'address families outside RestrictAddressFamilies',
    ).to.deep.equal([]);
  });

  it('ok the backup and restore commands in docs/install.md bring the store back', async () => {
    await stopService();
    const docs = readFileSync(join(REPO, 'docs', 'install.md'), 'utf8');
    const section = docs.slice(docs.indexOf('## 7. Back up and restore'), docs.indexOf('## 8. Uninstall'));
    const [backup, restore] = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1]!);
    // No systemd as PID 1 here: a shell function stands in for systemctl; backups go to this test's directory.
    const asPrinted = (block: string): string => `systemctl() { :; }\n${block.replaceAll('/var/backups/est-ra', join(tmp, 'backups'))}`;
    const requests = async (): Promise<string> => {
      const stats = await mustRun('runuser', ['-u', 'est-ra', '--', 'est-ra', 'store', 'stats', '--config', configFile]);
      return /^requests .*$/m.exec(stats)![0];
    };
    const before = await requests();
    expect(before).to.match(/^requests 3 /);
    const backedUp = await sh(asPrinted(backup!), tmp);
    expect(backedUp.code, backedUp.stderr).to.equal(0);
    const [archive] = readdirSync(join(tmp, 'backups'));
    const restored = await sh(asPrinted(restore!.replace('est-ra-2027-03-31.tar.gz', archive!)), tmp);
    expect(restored.code, restored.stderr).to.equal(0);
    expect(await requests()).to.equal(before);
    expect((await mustRun('stat', ['-c', '%U', join(STATE, 'est-ra.db')])).trim()).to.equal('est-ra');
  });

  it('ok installing the package again (an upgrade) keeps the state, the configuration and the modes', async () => {
    const installed = await run('dpkg', ['-i', ...forceDepends, DEB]);
    expect(installed.code, installed.stderr).to.equal(0);
    expect((await mustRun('stat', ['-c', '%a %U:%G', STATE, '/etc/est-ra'])).trim().split('\n')).to.deep.equal(['750 est-ra:est-ra', '750 root:est-ra']);
    expect(await mustRun('runuser', ['-u', 'est-ra', '--', 'est-ra', 'check-config', '--config', configFile])).to.contain('OK');
  });

  it('ok systemd-analyze verify passes on the installed unit, and security --offline scores it at most 2.5', async () => {
    const verify = await run('systemd-analyze', ['verify', UNIT]);
    expect(verify.code, verify.stderr).to.equal(0);
    expect(verify.stderr).to.not.contain('est-ra');
    const security = await run('systemd-analyze', ['security', '--offline=true', 'est-ra.service']);
    const score = /Overall exposure level for est-ra\.service: (\d+\.\d+)/.exec(security.stdout);
    expect(score, security.stdout + security.stderr).to.not.equal(null);
    expect(Number(score![1])).to.be.at.most(2.5);
  });

  it('ok dpkg -r removes the program and keeps the state, the configuration and the est-ra user', async () => {
    await mustRun('dpkg', ['-r', 'est-ra']);
    for (const gone of ['/usr/lib/est-ra', '/usr/bin/est-ra', UNIT, '/usr/share/doc/est-ra']) expect(existsSync(gone), gone).to.equal(false);
    expect(existsSync(join(STATE, 'est-ra.db'))).to.equal(true);
    expect(existsSync('/etc/est-ra/config.yaml')).to.equal(true);
    expect((await run('getent', ['passwd', 'est-ra'])).code).to.equal(0);
    expect((await mustRun('dpkg-query', ['-W', '-f', '${Status}', 'est-ra'])).trim()).to.equal('deinstall ok config-files');
  });

  it('ok dpkg -P removes /etc/est-ra, keeps the state and the user, and says how to delete them', async () => {
    const purged = await run('dpkg', ['-P', 'est-ra']);
    expect(purged.code, purged.stderr).to.equal(0);
    expect(purged.stderr).to.contain('kept /var/lib/est-ra (CA keys, certificates, audit trail) and the est-ra user');
    expect(existsSync('/etc/est-ra')).to.equal(false);
    expect(existsSync(join(STATE, 'est-ra.db'))).to.equal(true);
    expect((await run('getent', ['passwd', 'est-ra'])).code).to.equal(0);
    expect((await run('dpkg-query', ['-W', 'est-ra'])).code, 'dpkg no longer knows est-ra').to.not.equal(0);
  });
});
