// The official `openai` npm client (pinned in package.json) against a real keygate in front of
// the mock upstream, with only its base URL changed (spec data-plane.md: "every OpenAI-compatible
// SDK works by changing its base URL"): chat, streams, embeddings, models, and keygate's
// refusals arriving as the client's own error classes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { startGateway } from './openai_gateway.mjs';

let gate;

// Retries off: the client retries 429 and 5xx by default, which would hide what keygate said.
function client(apiKey) {
  return new OpenAI({ apiKey, baseURL: gate.openaiUrl, maxRetries: 0, timeout: 10_000 });
}

async function rejectsWith(promise, ErrorClass, status, code) {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof ErrorClass,
              `expected ${ErrorClass.name}, got ${error?.constructor?.name}: ${error?.message}`);
    assert.equal(error.status, status);
    assert.equal(error.code, code);
    assert.equal(typeof error.error?.message, 'string');
    return true;
  });
}

before(async () => {
  gate = await startGateway();
});

after(async () => {
  await gate?.stop();
});

describe('the openai client through keygate', () => {
  test('a chat completion', async () => {
    const openai = client(await gate.mint());
    const completion = await openai.chat.completions.create({
      model: 'mock/echo',
      messages: [{ role: 'user', content: 'Hello from the openai client' }],
      max_tokens: 50,
    });
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices[0].message.content, 'echo: Hello from the openai client');
    assert.equal(completion.usage.completion_tokens, 6);
  });

  test('a streamed chat completion, chunk by chunk, without the usage chunk', async () => {
    const openai = client(await gate.mint());
    const stream = await openai.chat.completions.create({
      model: 'mock/echo',
      messages: [{ role: 'user', content: 'stream me please' }],
      stream: true,
    });
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.ok(chunk.choices.length > 0, 'the usage-only chunk was not asked for');
      assert.equal(chunk.usage, undefined);
      text += chunk.choices[0].delta.content ?? '';
    }
    assert.ok(chunks >= 2);
    assert.equal(text, 'echo: stream me please');
  });

  // The mock frames this stream by its length and writes it at once, so keygate has it whole
  // in the read that brings the head (about 1 KB on loopback) and sends it as one answer of
  // known length: the client reads the same chunks. (Were it ever split across reads, keygate
  // would relay it as a chunked stream, and the framing assertion below would fail.)
  test('a stream in hand whole, sent as one answer, reads chunk by chunk', async () => {
    const openai = client(await gate.mint());
    const { data: stream, response } = await openai.chat.completions
      .create(
        { model: 'mock/echo', messages: [{ role: 'user', content: 'all at once' }], stream: true },
        { headers: { 'x-mock-stream-framing': 'length' } },
      )
      .withResponse();
    assert.equal(response.headers.get('transfer-encoding'), null);
    assert.ok(Number(response.headers.get('content-length')) > 0);
    let text = '';
    let chunks = 0;
    for await (const chunk of stream) {
      chunks += 1;
      assert.ok(chunk.choices.length > 0, 'the usage-only chunk was not asked for');
      text += chunk.choices[0].delta.content ?? '';
    }
    assert.ok(chunks >= 2);
    assert.equal(text, 'echo: all at once');
  });

  test('a stream that asks for usage gets it last', async () => {
    const openai = client(await gate.mint());
    const stream = await openai.chat.completions.create({
      model: 'mock/echo',
      messages: [{ role: 'user', content: 'count my tokens' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let last;
    for await (const chunk of stream) last = chunk;
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 4);
  });

  test('embeddings (the client asks for base64 and decodes it)', async () => {
    const openai = client(await gate.mint());
    const result = await openai.embeddings.create({ model: 'mock/embed', input: ['one', 'two'] });
    assert.equal(result.data.length, 2);
    assert.equal(result.data[0].embedding.length, 8);
    assert.ok(result.usage.prompt_tokens > 0);
  });

  test('models lists what the key may call', async () => {
    const openai = client(await gate.mint({ models: ['mock/echo', 'MOCK/embed'] }));
    const ids = [];
    for await (const model of openai.models.list()) ids.push(model.id);
    assert.deepEqual(ids, ['mock/echo', 'mock/embed']);
  });

  test('models.retrieve reads one model, and refuses one the key may not call', async () => {
    const openai = client(await gate.mint({ models: ['mock/echo'] }));
    const model = await openai.models.retrieve('mock/echo');
    assert.equal(model.id, 'mock/echo');
    assert.equal(model.object, 'model');
    await assert.rejects(openai.models.retrieve('mock/embed'), (error) => {
      assert.ok(error instanceof OpenAI.NotFoundError, String(error));
      assert.equal(error.code, 'model_not_found');
      return true;
    });
  });

  test('the caller key never reaches the upstream; the provider key does', async () => {
    const secret = await gate.mint();
    await client(secret).chat.completions.create({
      model: 'mock/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 5,
    });
    const stats = await (await fetch(`${gate.mockUrl}/mock/stats`)).json();
    assert.equal(stats.last_authorization, `Bearer ${gate.upstreamKey}`);
    assert.equal(stats.last_body.model, 'gpt-4o-mini');
    assert.ok(!JSON.stringify(stats).includes(secret));
    assert.ok(!gate.log().includes(secret));
  });
});

describe('keygate refusals as the client error classes', () => {
  test('401 invalid key: AuthenticationError', async () => {
    await rejectsWith(client('sk-kg-not-a-real-key').chat.completions.create({
      model: 'mock/echo', messages: [{ role: 'user', content: 'hi' }],
    }), OpenAI.AuthenticationError, 401, 'invalid_api_key');
  });

  test('402 budget exceeded: APIError with status 402', async () => {
    const openai = client(await gate.mint({ credit_limit: 0.00001 }));
    await rejectsWith(openai.chat.completions.create({
      model: 'mock/echo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100,
    }), OpenAI.APIError, 402, 'budget_exceeded');
  });

  test('403 model not allowed: PermissionDeniedError', async () => {
    const openai = client(await gate.mint({ models: ['mock/echo'] }));
    await rejectsWith(openai.chat.completions.create({
      model: 'mock/gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }],
    }), OpenAI.PermissionDeniedError, 403, 'model_not_allowed');
  });

  test('429 rate limited: RateLimitError with retry headers', async () => {
    const openai = client(await gate.mint({ rpm_limit: 1 }));
    const request = { model: 'mock/echo', messages: [{ role: 'user', content: 'hi' }] };
    await openai.chat.completions.create(request);
    await assert.rejects(openai.chat.completions.create(request), (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError, `got ${error?.constructor?.name}`);
      assert.equal(error.status, 429);
      assert.equal(error.code, 'rate_limit_exceeded');
      assert.ok(Number(error.headers.get('retry-after')) >= 1);
      assert.equal(error.headers.get('x-ratelimit-limit-requests'), '1');
      return true;
    });
  });

  // Audit M: an upstream that ignores `stream` answered in one piece, and the client read that
  // as a stream of no chunks. keygate now sends the stream of that answer.
  test('a stream asked of an upstream that answers in one piece reads as a stream', async () => {
    const openai = client(await gate.mint());
    const stream = await openai.chat.completions.create({
      model: 'mock/echo',
      messages: [{ role: 'user', content: 'one piece please' }],
      stream: true,
      stream_options: { include_usage: true },
    }, { headers: { 'x-mock-ignore-stream': '1' } });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage = chunk.usage ?? usage;
    }
    assert.equal(text, 'echo: one piece please');
    assert.ok(usage?.completion_tokens > 0);
  });

  // Audit M: a request larger than the whole TPM limit was sent three times by the client's
  // default retries; keygate's x-should-retry: false stops them.
  test('429 that no wait can help: the client does not retry it', async () => {
    let sent = 0;
    const openai = new OpenAI({
      apiKey: await gate.mint({ tpm_limit: 500 }), baseURL: gate.openaiUrl, maxRetries: 2,
      timeout: 10_000, fetch: (url, init) => { sent += 1; return fetch(url, init); },
    });
    await assert.rejects(openai.chat.completions.create({
      model: 'mock/echo', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1000,
    }), (error) => {
      assert.ok(error instanceof OpenAI.RateLimitError, `got ${error?.constructor?.name}`);
      assert.equal(error.headers.get('x-should-retry'), 'false');
      return true;
    });
    assert.equal(sent, 1);
  });

  test('404 unknown model: NotFoundError', async () => {
    const openai = client(await gate.mint());
    await rejectsWith(openai.chat.completions.create({
      model: 'mock/does-not-exist', messages: [{ role: 'user', content: 'hi' }],
    }), OpenAI.NotFoundError, 404, 'model_not_found');
  });
});
