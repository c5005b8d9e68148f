// GET /openapi.json (spec README §6): the served document is docs/openapi.json byte for byte
// (embedded at build time), a valid OpenAPI 3.1 document by an independent validator (pinned
// in package.json), and every operation it documents is routed by the server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { validate } from '@readme/openapi-parser';

import { sourceOpenApi, startKeygate } from './harness.mjs';

// Served by a room that has not landed yet; reported as a todo rather than a failure.
const PENDING_ROUTES = new Map();
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const SAMPLE_ID = 'a'.repeat(64);

let gate;
let served;

before(async () => {
  gate = await startKeygate();
  const reply = await fetch(`${gate.baseUrl}/openapi.json`);
  assert.equal(reply.status, 200);
  assert.match(reply.headers.get('content-type'), /^application\/json/);
  served = await reply.text();
});

after(async () => {
  await gate?.stop();
});

describe('GET /openapi.json', () => {
  test('serves docs/openapi.json as embedded at build time', async () => {
    assert.equal(served, await sourceOpenApi());
  });

  test('is a valid OpenAPI 3.1 document', async () => {
    const document = JSON.parse(served);
    assert.equal(document.openapi, '3.1.0');
    const result = await validate(document);
    assert.equal(result.valid, true, JSON.stringify(result.errors ?? result, null, 2));
    assert.deepEqual(result.warnings ?? [], []);
  });

  test('documents the owner API, the three dialects and the data plane', () => {
    const paths = Object.keys(JSON.parse(served).paths);
    for (const path of ['/api/owner/provisioning-keys', '/api/owner/keys', '/api/owner/audit',
                        '/prod/createServiceKey', '/prod/getServiceKeys', '/api/v1/keys',
                        '/api/v1/keys/{hash}', '/api/v1/keys/{hash}/rotate', '/v2/api-keys',
                        '/v2/api-keys/{id}', '/v2/api-keys/{id}/rotate', '/v1/chat/completions',
                        '/v1/embeddings', '/v1/models', '/api/v1/key']) {
      assert.ok(paths.includes(path), `${path} is not documented`);
    }
  });
});

// Read at load time so that each documented operation is its own test.
const documented = JSON.parse(await sourceOpenApi());

describe('every documented operation is routed', () => {
  for (const [path, item] of Object.entries(documented.paths)) {
    for (const method of METHODS.filter((m) => item[m])) {
      const todo = PENDING_ROUTES.get(path);
      test(`${method.toUpperCase()} ${path}`, { todo }, async () => {
        const target = path.replace(/\{[^}]+\}/g, SAMPLE_ID);
        // No credentials: a routed management or data-plane call answers 401, an operational
        // one 200; an unrouted one 404 or 405.
        const reply = await fetch(`${gate.baseUrl}${target}`, { method: method.toUpperCase() });
        await reply.arrayBuffer();
        assert.ok(reply.status !== 404 && reply.status !== 405,
                  `${method.toUpperCase()} ${target} answered ${reply.status}`);
        assert.ok(reply.status < 500, `${method.toUpperCase()} ${target} answered ${reply.status}`);
      });
    }
  }
});
