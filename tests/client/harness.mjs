// Starts the real keygate binary for the node --test suites: a temp data directory, organizations
// made with `keygate init` and provisioning keys with `keygate provisioning-key create` (the
// same CLI an operator uses), `keygate serve` on a free loopback port, a bounded wait for
// /healthz, and a stop that always cleans up.
//
// The binary is $KEYGATE_BINARY (set by scripts/client-tests.sh), else ../../build/keygate.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export const KEYGATE_BINARY = process.env.KEYGATE_BINARY || join(here, '..', '..', 'build', 'keygate');
export const SOURCE_DIR = join(here, '..', '..');

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const POLL_MS = 50;

// A loopback port that was free a moment ago.
async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Runs a keygate CLI command and parses the one JSON object it prints.
async function cli(args) {
  const { stdout } = await run(KEYGATE_BINARY, args, { timeout: START_TIMEOUT_MS });
  return JSON.parse(stdout);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitForHealth(baseUrl, child, log) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) {
      throw new Error(`keygate exited with ${child.exitCode} before it was healthy:\n${log()}`);
    }
    try {
      const reply = await fetch(`${baseUrl}/healthz`);
      if (reply.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(POLL_MS);
  }
  throw new Error(`keygate was not healthy within ${START_TIMEOUT_MS} ms:\n${log()}`);
}

/**
 * Starts keygate with `orgs` organizations, each with an owner key and a provisioning key.
 * Returns { baseUrl, apiUrl, orgs: [{ orgId, ownerKey, pkId, pk }], log(), stop() }.
 * Call stop() in an after() hook; it is safe to call twice.
 */
export async function startKeygate({ orgs = 1 } = {}) {
  const dataDir = await mkdtemp(join(tmpdir(), 'keygate-client-'));
  const made = [];
  for (let i = 0; i < orgs; i += 1) {
    const name = `client-org-${i}`;
    const org = await cli(['init', '--data', dataDir, '--org', name]);
    const pk = await cli(['provisioning-key', 'create', '--data', dataDir, '--org', org.org_id,
                          '--name', `${name}-pk`]);
    made.push({ orgId: org.org_id, ownerKey: org.owner_key, pkId: pk.id, pk: pk.key });
  }
  const port = await freePort();
  const child = spawn(KEYGATE_BINARY, ['serve', '--data', dataDir, '--listen', `127.0.0.1:${port}`],
                      { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  const log = () => output;
  const baseUrl = `http://127.0.0.1:${port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await waitForHealth(baseUrl, child, log);
  } catch (error) {
    await stop();
    throw error;
  }
  return { baseUrl, apiUrl: `${baseUrl}/api/v1`, orgs: made, log, stop };
}

/** The OpenAPI document as written in the source tree. */
export async function sourceOpenApi() {
  return readFile(join(SOURCE_DIR, 'docs', 'openapi.json'), 'utf8');
}
