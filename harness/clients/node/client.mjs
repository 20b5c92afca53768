// streamconform's Node clients: one client, one request, one process (driven by harness/clients/node_client.py).
//
// Protocol over stdin/stdout, one JSON object per line (the same as harness/clients/child.py):
//   in   the job: client (openai_node | vercel_ai), url, method, headers, body, dialect, pin, cap_bytes,
//        follow_redirects
//   out  {"ready": true} once the SDK is imported (its import time is not the endpoint's)
//   in   {"go": true, "timeout": seconds}
//   out  {"read", "text", "first_text_ms", "deltas", "error", "error_type", "raw", "version", ...}
//
// Every request the SDK makes goes through `tappedFetch`: it is sent to the run's URL with the run's body (the
// same request as the main stream), the SDK's own headers plus the run's, and the body bytes are recorded with
// their arrival time before the SDK parses them. Node's fetch has already undone any Content-Encoding, so the
// record holds what the SDK was given. Name lookups answer only the endpoint's host, with the address the main
// request connected to.
//
// This file is copied beside the installed packages (the cache directory) and run from there, so that its
// imports resolve in that node_modules.

import dns from 'node:dns';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const TEXT_CAP_CHARS = 1024 * 1024;
const HERE = path.dirname(fileURLToPath(import.meta.url));
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

const input = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function nextMessage() {
  const line = await input.next();
  return line.done ? null : JSON.parse(line.value);
}

// Resolves once the line is handed to the pipe: stdout to a pipe is asynchronous in Node, and exiting before the
// write completes would cut a long result line short.
function send(obj) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(obj) + '\n', () => resolve()));
}

function errorText(e) {
  if (e === null || e === undefined) return 'unknown error';
  if (typeof e !== 'object') return String(e).slice(0, 300);
  // A plain object (an error event's payload the SDK passed on as it came) has no class of its own to name.
  const named = e.constructor && e.constructor !== Object ? e.constructor.name : 'error object';
  const name = e.name || named || 'Error';
  const message = String(e.message || '').trim().split('\n')[0].slice(0, 300);
  const cause = e.cause && e.cause.message ? ` (cause: ${String(e.cause.message).split('\n')[0].slice(0, 200)})` : '';
  return message ? `${name}: ${message}${cause}` : `${name}${cause}`;
}

function versionOf(pkg) {
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', pkg, 'package.json'), 'utf8'));
    return `${pkg} ${meta.version}`;
  } catch {
    return pkg;
  }
}

// Every lookup answers only the endpoint's host, with the checked address: the SDK cannot reach anything else.
function pinLookups(pin) {
  if (!pin || !pin.ip) return;
  const family = pin.ip.includes(':') ? 6 : 4;
  dns.lookup = function pinnedLookup(host, options, callback) {
    if (typeof options === 'function') { callback = options; options = {}; }
    if (String(host).toLowerCase() !== String(pin.host).toLowerCase()) {
      const err = new Error(`streamconform: ${host} is not the endpoint's host`);
      err.code = 'ENOTFOUND';
      process.nextTick(callback, err);
    } else if (options && options.all) {
      process.nextTick(callback, null, [{ address: pin.ip, family }]);
    } else {
      process.nextTick(callback, null, pin.ip, family);
    }
  };
}

class Recorder {
  constructor(cap) {
    this.cap = cap;
    this.requests = 0;
    this.t0 = null;
    this.reset();
  }

  reset() {
    this.status = null;
    this.headers = [];
    this.reads = [];
    this.size = 0;
    this.truncated = false;
    this.ended = false;
  }

  begin() {  // a retry or redirect replaces the exchange before: the last one is what the SDK read
    this.requests += 1;
    this.t0 = performance.now();
    this.reset();
  }

  seconds() {
    return (performance.now() - (this.t0 ?? performance.now())) / 1000;
  }

  toJSON() {
    if (this.t0 === null) return null;
    return { status: this.status, headers: this.headers, t_request_sent: null, reads: this.reads,
             truncated: this.truncated, ended: this.ended, t_end: this.seconds(), requests: this.requests };
  }
}

function runHeaders(job, sdkHeaders) {
  const headers = new Headers(sdkHeaders || {});
  const given = job.headers || {};
  for (const [k, v] of Object.entries(given)) headers.set(k, v);
  const lower = Object.keys(given).map((k) => k.toLowerCase());
  if (!lower.includes('authorization')) headers.delete('authorization');  // the run sent no credentials
  if (!lower.includes('x-api-key')) headers.delete('x-api-key');
  headers.set('content-type', 'application/json');
  return headers;
}

function tappedFetch(job, rec) {
  return async function fetchForTheSdk(resource, init = {}) {
    rec.begin();
    const response = await fetch(job.url, {
      method: job.method || 'POST', headers: runHeaders(job, init.headers), body: job.body || undefined,
      signal: init.signal, redirect: job.follow_redirects ? 'follow' : 'manual',
    });
    rec.status = response.status;
    response.headers.forEach((v, k) => rec.headers.push([k, v]));
    if (!response.body || NULL_BODY_STATUSES.has(response.status)) {
      rec.ended = true;
      return response;
    }
    const reader = response.body.getReader();
    const body = new ReadableStream({
      async pull(controller) {
        let next;
        try {
          next = await reader.read();
        } catch (e) {
          controller.error(e);
          return;
        }
        if (next.done) {
          rec.ended = true;
          controller.close();
          return;
        }
        let chunk = next.value;
        const room = rec.cap - rec.size;
        const last = chunk.length >= room;
        if (last) {  // the client's share of the byte budget: it reads no further (a flood stays bounded)
          chunk = chunk.subarray(0, room);
          rec.truncated = true;
        }
        rec.size += chunk.length;
        if (chunk.length) rec.reads.push([rec.seconds(), Buffer.from(chunk).toString('base64')]);
        controller.enqueue(chunk);
        if (last) {
          controller.close();
          reader.cancel().catch(() => {});
        }
      },
      cancel(reason) {
        return reader.cancel(reason);
      },
    });
    return new Response(body, { status: response.status, statusText: response.statusText,
                                headers: response.headers });
  };
}

function bodyOf(job) {
  try {
    return job.body ? JSON.parse(job.body) : {};
  } catch {
    return {};
  }
}

// The SDK's base URL is never used: every request goes to the run's URL (see tappedFetch).
const UNUSED_BASE = 'http://streamconform.invalid/v1';
const UNUSED_KEY = 'streamconform-unused';

const CLIENTS = {
  async openai_node(job, fetchImpl) {
    const OpenAI = (await import('openai')).default;
    const responses = job.dialect === 'openai-responses';
    return {
      version: versionOf('openai'),
      async *deltas(signal) {
        const client = new OpenAI({ apiKey: UNUSED_KEY, baseURL: UNUSED_BASE, fetch: fetchImpl, maxRetries: 0 });
        const params = { ...bodyOf(job), stream: true };
        if (responses) {
          const stream = await client.responses.create(params, { signal });
          for await (const event of stream) {
            yield event && event.type === 'response.output_text.delta' ? event.delta : null;
          }
        } else {
          const stream = await client.chat.completions.create(params, { signal });
          for await (const chunk of stream) {
            const choice = chunk && chunk.choices && chunk.choices[0];
            yield choice && choice.delta ? choice.delta.content : null;
          }
        }
      },
    };
  },

  async vercel_ai(job, fetchImpl) {
    const { streamText } = await import('ai');
    const responses = job.dialect === 'openai-responses';
    const modelId = String(bodyOf(job).model || 'model');
    let model;
    if (responses) {
      const { createOpenAI } = await import('@ai-sdk/openai');
      model = createOpenAI({ baseURL: UNUSED_BASE, apiKey: UNUSED_KEY, fetch: fetchImpl }).responses(modelId);
    } else {
      const { createOpenAICompatible } = await import('@ai-sdk/openai-compatible');
      model = createOpenAICompatible({ name: 'endpoint', baseURL: UNUSED_BASE, apiKey: UNUSED_KEY,
                                       fetch: fetchImpl }).chatModel(modelId);
    }
    return {
      version: `${versionOf('ai')} + ${versionOf(responses ? '@ai-sdk/openai' : '@ai-sdk/openai-compatible')}`,
      async *deltas(signal) {
        // The prompt is the SDK's to build; tappedFetch sends the run's own body in its place.
        const result = streamText({ model, prompt: 'streamconform', maxRetries: 0, abortSignal: signal,
                                    onError: () => {} });
        for await (const part of result.fullStream) {
          if (part.type === 'error') throw part.error;  // what an application's stream loop would see
          if (part.type === 'text-delta') yield part.delta ?? part.text ?? part.textDelta ?? null;
        }
      },
    };
  },
};

async function run(client, rec, timeout) {
  const out = { read: false, text: '', first_text_ms: null, deltas: 0, error: null, error_type: null,
                text_truncated: false, clock: 'node' };
  const abort = new AbortController();
  let expired = false;
  const timer = setTimeout(() => { expired = true; abort.abort(); }, Math.max(50, timeout * 1000));
  const pieces = [];
  let size = 0;
  try {
    for await (const delta of client.deltas(abort.signal)) {
      out.deltas += 1;
      if (!delta) continue;
      if (out.first_text_ms === null && rec.t0 !== null) out.first_text_ms = performance.now() - rec.t0;
      if (size < TEXT_CAP_CHARS) {
        const piece = String(delta).slice(0, TEXT_CAP_CHARS - size);
        pieces.push(piece);
        size += piece.length;
      } else {
        out.text_truncated = true;
      }
    }
    out.read = true;
    // openai-node ends its stream quietly when the request is aborted: our timer's abort is still the deadline.
    if (expired) throw new Error('aborted');
  } catch (e) {
    if (expired) {
      out.read = false;
      out.error = `no end of stream within the run's deadline (${timeout.toFixed(1)} s left)`;
      out.error_type = 'deadline';
    } else {
      out.error = errorText(e);
      out.error_type = (e && typeof e === 'object' && (e.name || (e.constructor !== Object && e.constructor.name)))
        || 'Error';
      out.traceback = String((e && e.stack) || '').split('\n').slice(0, 4).join('\n').slice(0, 1500);
    }
  }
  clearTimeout(timer);
  out.text = pieces.join('');
  out.raw = rec.toJSON();
  out.version = client.version;
  return out;
}

async function main() {
  const job = await nextMessage();
  pinLookups(job.pin);
  const rec = new Recorder(Number(job.cap_bytes) || 1024 * 1024);
  let client;
  try {
    client = await CLIENTS[job.client](job, tappedFetch(job, rec));
  } catch (e) {
    await send({ ready: false, error: `could not set up ${job.client}: ${errorText(e)}` });
    return 1;
  }
  await send({ ready: true });
  const go = await nextMessage();
  if (!go || !go.go) return 0;
  await send(await run(client, rec, Number(go.timeout) || 30));
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  process.stderr.write(`streamconform node client: ${errorText(e)}\n`);
  process.exit(3);
});
