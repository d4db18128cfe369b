import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { expect } from 'chai';
import { cpuMs, processTreeCpuMs } from '../../scripts/bench-lib.js';

/**
 * The bench's cluster section (scripts/bench-cluster.ts) counts PostgreSQL's
 * CPU as the postmaster's own, its live children's and its reaped
 * children's (/proc/<pid>/stat cutime + cstime). A child that spends a known
 * amount of CPU, live or ended, must show up in its parent's total. /proc
 * counts in clock ticks (10 ms), truncated, user and system apiece.
 */
const TICK_SLACK_MS = 20;
const CHILD_CPU_MS = 300;
/** Spins until this process has used CHILD_CPU_MS of CPU (not wall time), prints what it used, then waits for stdin to end. */
const BURN = `
  const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  while (used() < ${CHILD_CPU_MS});
  process.stdout.write(String(used()) + '\\n');
  if (process.argv[1] === 'wait') process.stdin.resume();
`;

describe('bench: CPU of a process and its children (/proc)', () => {
  it('is at least the process’s own CPU', () => {
    expect(processTreeCpuMs(process.pid)).to.be.at.least(cpuMs(process.pid));
  });

  it('counts a child that has ended (reaped: cutime + cstime)', () => {
    const before = processTreeCpuMs(process.pid);
    const childMs = Number(execFileSync(process.execPath, ['-e', BURN], { encoding: 'utf8' }));
    expect(childMs).to.be.at.least(CHILD_CPU_MS);
    expect(processTreeCpuMs(process.pid) - before).to.be.at.least(childMs - TICK_SLACK_MS);
  });

  it('counts a live child (every process whose parent it is)', async () => {
    const before = processTreeCpuMs(process.pid);
    const child = spawn(process.execPath, ['-e', BURN, 'wait'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    try {
      expect(child.exitCode).to.equal(null);
      expect(processTreeCpuMs(process.pid) - before).to.be.at.least(Number(line.toString()) - TICK_SLACK_MS);
    } finally {
      child.stdin.end();
      await once(child, 'exit');
    }
  });
});
