// Starts the mock upstream and a real keygate in front of it for the `openai` client suite: the
// mock on a free port (--port-file), a config file in a temp directory pointing the `mock`
// provider at it, one organization with a provisioning key (made with the CLI), and helpers to
// mint service keys through FastRouter's dialect.
//
// Binaries: $KEYGATE_BINARY and $MOCK_UPSTREAM_BINARY (set by scripts/client-tests.sh), else the
// ones in ../../build.
import { spawn, execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const build = join(here, '..', '..', 'build');

const KEYGATE_BINARY = process.env.KEYGATE_BINARY || join(build, 'keygate');
const MOCK_BINARY = process.env.MOCK_UPSTREAM_BINARY ||
                    join(build, 'tools', 'mock_upstream', 'mock_upstream');
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;
const POLL_MS = 25;
const UPSTREAM_KEY = 'sk-upstream-openai-suite';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

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

async function cli(args) {
  const { stdout } = await run(KEYGATE_BINARY, args, { timeout: START_TIMEOUT_MS });
  return JSON.parse(stdout);
}

// Polls `probe` until it returns a truthy value, for START_TIMEOUT_MS at most.
async function waitFor(what, probe, log) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value) return value;
    } catch {
      // not up yet
    }
    await sleep(POLL_MS);
  }
  throw new Error(`${what} did not come up within ${START_TIMEOUT_MS} ms:\n${log()}`);
}

function startChild(binary, args, env) {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let output = '';
  child.stdout.on('data', (chunk) => { output += chunk; });
  child.stderr.on('data', (chunk) => { output += chunk; });
  return { child, log: () => output };
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function configYaml(mockPort) {
  const model = (id, upstream, input, output, context, maxOutput) =>
    `  - id: ${id}\n    upstream: ${upstream}\n    input_usd_per_mtok: ${input}\n` +
    `    output_usd_per_mtok: ${output}\n    context_tokens: ${context}\n` +
    `    max_output_tokens: ${maxOutput}\n`;
  return 'providers:\n' +
    `  - name: mock\n    base_url: http://127.0.0.1:${mockPort}/v1\n` +
    '    api_key_env: KG_OPENAI_SUITE_UPSTREAM_KEY\n' +
    'models:\n' +
    model('mock/echo', 'echo', '1.0', '2.0', 8192, 1024) +
    model('mock/gpt-4o-mini', 'gpt-4o-mini', '0.15', '0.60', 128000, 16384) +
    model('mock/embed', 'text-embedding-3-small', '0.02', '0', 8191, 0);
}

/**
 * Starts the mock and keygate. Returns { baseUrl, openaiUrl, pk, mockUrl, upstreamKey,
 * mint(fields), log(), stop() }. Call stop() in an after() hook; it is safe to call twice.
 */
export async function startGateway() {
  const dir = await mkdtemp(join(tmpdir(), 'keygate-openai-'));
  const portFile = join(dir, 'mock.port');
  const mock = startChild(MOCK_BINARY, ['--listen', '127.0.0.1:0', '--port-file', portFile],
                          process.env);
  const children = [mock.child];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const child of children.reverse()) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const mockPort = await waitFor('mock upstream', async () =>
      Number((await readFile(portFile, 'utf8')).trim()), mock.log);
    const config = join(dir, 'keygate.yaml');
    await writeFile(config, configYaml(mockPort));
    const org = await cli(['init', '--data', dir, '--org', 'openai-suite']);
    const pk = await cli(['provisioning-key', 'create', '--data', dir, '--org', org.org_id,
                          '--name', 'openai-suite-pk']);
    const port = await freePort();
    const gate = startChild(KEYGATE_BINARY, ['serve', '--data', dir, '--config', config,
                                             '--listen', `127.0.0.1:${port}`],
                            { ...process.env, KG_OPENAI_SUITE_UPSTREAM_KEY: UPSTREAM_KEY });
    children.push(gate.child);
    const baseUrl = `http://127.0.0.1:${port}`;
    await waitFor('keygate', async () => (await fetch(`${baseUrl}/healthz`)).ok, gate.log);
    let counter = 0;
    const mint = async (fields = {}) => {
      counter += 1;
      const reply = await fetch(`${baseUrl}/prod/createServiceKey`, {
        method: 'POST',
        headers: { authorization: `Bearer ${pk.key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ api_key_name: `openai-suite-${counter}`, ...fields }),
      });
      const body = await reply.json();
      if (reply.status !== 201) throw new Error(`mint failed: ${JSON.stringify(body)}`);
      return body.api_key;
    };
    return {
      baseUrl,
      openaiUrl: `${baseUrl}/v1`,
      mockUrl: `http://127.0.0.1:${mockPort}`,
      pk: pk.key,
      upstreamKey: UPSTREAM_KEY,
      mint,
      log: () => gate.log(),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
