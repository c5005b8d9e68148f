// The official @openrouter/sdk (pinned in package.json) against a real keygate, with only
// serverURL changed (spec dialects.md "OpenRouter": the SDK is the judge). Every API-key call
// must pass the SDK's strict response validation, and keygate's errors must arrive as the SDK's
// typed errors.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { OpenRouter } from '@openrouter/sdk';
import * as errors from '@openrouter/sdk/models/errors';

import { startKeygate } from './harness.mjs';

let gate;
let sdk;      // provisioning key of org 0
let ownerSdk; // owner credential of org 0
let otherSdk; // provisioning key of org 1

// Retries off: the SDK retries 5xx for up to an hour by default, which would hide a 5xx.
function client(apiKey) {
  return new OpenRouter({ apiKey, serverURL: gate.apiUrl, retryConfig: { strategy: 'none' } });
}

async function rejectsWith(promise, ErrorClass, status) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ErrorClass,
              `expected ${ErrorClass.name}, got ${error?.name}: ${error?.message}`);
    assert.equal(error.statusCode, status);
    assert.equal(error.error?.code, status, 'error.code is the HTTP status as an integer');
    assert.equal(typeof error.error?.message, 'string');
    assert.match(error.contentType, /^application\/json/);
    return true;
  });
}

before(async () => {
  gate = await startKeygate({ orgs: 2 });
  sdk = client(gate.orgs[0].pk);
  ownerSdk = client(gate.orgs[0].ownerKey);
  otherSdk = client(gate.orgs[1].pk);
});

after(async () => {
  await gate?.stop();
});

describe('API keys through the official SDK', () => {
  test('create answers 201 with KeyData and the secret once', async () => {
    const created = await sdk.apiKeys.create({
      requestBody: {
        name: 'sdk-created',
        limit: 12.5,
        limitReset: 'monthly',
        includeByokInLimit: true,
        expiresAt: new Date('2099-01-01T00:00:00Z'),
        creatorUserId: 'user-7',
        external: { user: 'ext-1' },
      },
    });
    assert.match(created.key, /^sk-kg-/);
    assert.match(created.data.hash, /^[0-9a-f]{64}$/);
    assert.equal(created.data.name, 'sdk-created');
    assert.match(created.data.label, /••••/);
    assert.equal(created.data.limit, 12.5);
    assert.equal(created.data.limitRemaining, 12.5);
    assert.equal(created.data.limitReset, 'monthly');
    assert.equal(created.data.includeByokInLimit, true);
    assert.equal(created.data.disabled, false);
    assert.equal(created.data.usage, 0);
    assert.equal(created.data.byokUsageMonthly, 0);
    assert.equal(created.data.updatedAt, null);
    assert.equal(created.data.expiresAt.toISOString(), '2099-01-01T00:00:00.000Z');
    assert.equal(created.data.creatorUserId, 'user-7');
    assert.equal(created.data.externalUser, 'ext-1');
    assert.equal(created.data.workspaceId, gate.orgs[0].orgId);
  });

  test('list is newest first, pages with offset, hides disabled keys by default', async () => {
    const first = await sdk.apiKeys.create({ requestBody: { name: 'list-first' } });
    const second = await sdk.apiKeys.create({ requestBody: { name: 'list-second' } });
    const listed = await sdk.apiKeys.list();
    const hashes = listed.data.map((key) => key.hash);
    assert.ok(hashes.indexOf(second.data.hash) < hashes.indexOf(first.data.hash));
    assert.equal(hashes[0], second.data.hash);
    const skipped = await sdk.apiKeys.list({ offset: 1 });
    assert.deepEqual(skipped.data.map((key) => key.hash), hashes.slice(1));
    const own = await sdk.apiKeys.list({ workspaceId: gate.orgs[0].orgId });
    assert.equal(own.data.length, hashes.length);
    const foreign = await sdk.apiKeys.list({ workspaceId: gate.orgs[1].orgId });
    assert.deepEqual(foreign.data, []);

    await sdk.apiKeys.update({ hash: first.data.hash, requestBody: { disabled: true } });
    const visible = (await sdk.apiKeys.list()).data.map((key) => key.hash);
    assert.ok(!visible.includes(first.data.hash));
    const all = (await sdk.apiKeys.list({ includeDisabled: true })).data.map((key) => key.hash);
    assert.ok(all.includes(first.data.hash));
  });

  test('get, update (partial and empty), disable, enable and delete', async () => {
    const created = await sdk.apiKeys.create({ requestBody: { name: 'lifecycle', limit: 5 } });
    const { hash } = created.data;
    const got = await sdk.apiKeys.get({ hash });
    assert.deepEqual(got.data, created.data);

    const renamed = await sdk.apiKeys.update({
      hash, requestBody: { name: 'lifecycle-2', limit: 20, limitReset: 'daily' },
    });
    assert.equal(renamed.data.name, 'lifecycle-2');
    assert.equal(renamed.data.limit, 20);
    assert.equal(renamed.data.limitReset, 'daily');
    assert.notEqual(renamed.data.updatedAt, null);

    const untouched = await sdk.apiKeys.update({ hash, requestBody: {} });
    assert.equal(untouched.data.name, 'lifecycle-2');
    assert.equal(untouched.data.limit, 20);

    const cleared = await sdk.apiKeys.update({ hash, requestBody: { limit: null, limitReset: null } });
    assert.equal(cleared.data.limit, null);
    assert.equal(cleared.data.limitRemaining, null);
    assert.equal(cleared.data.limitReset, null);

    const disabled = await sdk.apiKeys.update({ hash, requestBody: { disabled: true } });
    assert.equal(disabled.data.disabled, true);
    const enabled = await sdk.apiKeys.update({ hash, requestBody: { disabled: false } });
    assert.equal(enabled.data.disabled, false);

    const deleted = await sdk.apiKeys.delete({ hash });
    assert.deepEqual(deleted, { deleted: true });
    await rejectsWith(sdk.apiKeys.get({ hash }), errors.NotFoundResponseError, 404);
  });

  test('the owner credential manages the same keys', async () => {
    const created = await ownerSdk.apiKeys.create({ requestBody: { name: 'by-owner' } });
    const got = await sdk.apiKeys.get({ hash: created.data.hash });
    assert.equal(got.data.name, 'by-owner');
    await ownerSdk.apiKeys.delete({ hash: created.data.hash });
  });
});

describe('the current key', () => {
  test('a service key reads its own limits and usage', async () => {
    const created = await sdk.apiKeys.create({
      requestBody: { name: 'current', limit: 3.5, limitReset: 'weekly' },
    });
    const me = await client(created.key).apiKeys.getCurrentKeyMetadata();
    assert.equal(me.data.label, created.data.label);
    assert.equal(me.data.limit, 3.5);
    assert.equal(me.data.limitRemaining, 3.5);
    assert.equal(me.data.limitReset, 'weekly');
    assert.equal(me.data.usage, 0);
    assert.equal(me.data.isProvisioningKey, false);
    assert.equal(me.data.isManagementKey, false);
    assert.equal(me.data.isFreeTier, false);
    assert.equal(me.data.workspaceId, gate.orgs[0].orgId);
    assert.deepEqual(me.data.allowedDataRegions, ['global']);
    assert.equal(typeof me.data.rateLimit.requests, 'number');
    assert.equal(typeof me.data.freeModelDailyRequests.used, 'number');
  });

  test('a provisioning key and an owner credential read themselves as management keys', async () => {
    for (const [api, prefix] of [[sdk, 'pk-kg-'], [ownerSdk, 'ok-kg-']]) {
      const me = await api.apiKeys.getCurrentKeyMetadata();
      assert.equal(me.data.isProvisioningKey, true);
      assert.equal(me.data.isManagementKey, true);
      assert.ok(me.data.label.startsWith(prefix), me.data.label);
      assert.equal(me.data.limit, null);
      assert.equal(me.data.organizationId, gate.orgs[0].orgId);
    }
  });
});

describe('typed SDK errors', () => {
  test('400 BadRequestResponseError for bad input, naming the field', async () => {
    await rejectsWith(sdk.apiKeys.create({ requestBody: { name: '' } }),
                      errors.BadRequestResponseError, 400);
    await assert.rejects(sdk.apiKeys.create({ requestBody: { name: 'x', limit: -1 } }),
                         (error) => error instanceof errors.BadRequestResponseError &&
                                    /limit/.test(error.error.message));
    const { data } = await sdk.apiKeys.create({ requestBody: { name: 'target' } });
    await assert.rejects(
      sdk.apiKeys.update({ hash: data.hash, requestBody: { name: '' } }),
      (error) => error instanceof errors.BadRequestResponseError && /name/.test(error.message));
  });

  test('401 UnauthorizedResponseError for an unknown or disabled key', async () => {
    await rejectsWith(client('pk-kg-not-a-key').apiKeys.list(),
                      errors.UnauthorizedResponseError, 401);
    await rejectsWith(client('pk-kg-not-a-key').apiKeys.getCurrentKeyMetadata(),
                      errors.UnauthorizedResponseError, 401);
    const disable = await fetch(`${gate.baseUrl}/api/owner/provisioning-keys/${gate.orgs[1].pkId}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${gate.orgs[1].ownerKey}` },
      body: JSON.stringify({ disabled: true }),
    });
    assert.equal(disable.status, 200);
    await rejectsWith(otherSdk.apiKeys.create({ requestBody: { name: 'x' } }),
                      errors.UnauthorizedResponseError, 401);
  });

  test('403 ForbiddenResponseError for a service key on the management API', async () => {
    const created = await sdk.apiKeys.create({ requestBody: { name: 'not-a-manager' } });
    await rejectsWith(client(created.key).apiKeys.create({ requestBody: { name: 'x' } }),
                      errors.ForbiddenResponseError, 403);
  });

  test('404 NotFoundResponseError for a missing or another organization\'s key', async () => {
    const missing = '0'.repeat(64);
    await rejectsWith(sdk.apiKeys.get({ hash: missing }), errors.NotFoundResponseError, 404);
    await rejectsWith(sdk.apiKeys.update({ hash: missing, requestBody: { name: 'x' } }),
                      errors.NotFoundResponseError, 404);
    await rejectsWith(sdk.apiKeys.delete({ hash: missing }), errors.NotFoundResponseError, 404);
    const ownerOfOther = client(gate.orgs[1].ownerKey);
    const foreign = await ownerOfOther.apiKeys.create({ requestBody: { name: 'org-1-key' } });
    await rejectsWith(sdk.apiKeys.get({ hash: foreign.data.hash }),
                      errors.NotFoundResponseError, 404);
    await rejectsWith(sdk.apiKeys.delete({ hash: foreign.data.hash }),
                      errors.NotFoundResponseError, 404);
    const still = await ownerOfOther.apiKeys.get({ hash: foreign.data.hash });
    assert.equal(still.data.name, 'org-1-key');
  });
});
