// HTTP/1.1 to Aegis over keep-alive connections (node:http and node:https, no dependencies).
//
// One Transport per base URL holds one Agent, so consecutive calls reuse a connection: a decision
// costs one round trip on an open socket. Idle sockets are unref'd by the Agent and never keep
// the process alive.

import http from 'node:http';
import https from 'node:https';
import { AegisUnavailable, ConfigurationError, ProtocolError } from './errors.js';

export const USER_AGENT = 'aegis-node/0.1';
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const RETRYABLE_ON_REUSED = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export class Transport {
  /** `baseUrl`: http(s)://host:port[/prefix]. Throws ConfigurationError when it is not one. */
  constructor(baseUrl, { maxSockets = 64, count = () => {} } = {}) {
    let url;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new ConfigurationError(`aegis: url ${JSON.stringify(baseUrl)} is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new ConfigurationError(`aegis: url ${baseUrl} must be http:// or https://`);
    }
    if (url.search || url.hash || url.username || url.password) {
      throw new ConfigurationError(`aegis: url ${baseUrl} must have no query, fragment or user info`);
    }
    this.url = url;
    this.module = url.protocol === 'https:' ? https : http;
    this.prefix = url.pathname.replace(/\/+$/, '');
    this.count = count;
    this.agent = new this.module.Agent({ keepAlive: true, maxSockets, scheduling: 'lifo' });
  }

  /**
   * Sends one request and resolves to {status, headers, text}. Rejects with AegisUnavailable when
   * Aegis cannot be reached, the connection fails, or no whole answer arrives within timeoutMs;
   * with ProtocolError when the answer is larger than 8 MiB. A request that failed on a reused
   * keep-alive connection before any answer (the server closed it while idle) is sent once more on
   * a new one.
   */
  async request(method, path, { body = null, headers = {}, timeoutMs = 5000 } = {}) {
    try {
      return await this.#once(method, path, body, headers, timeoutMs);
    } catch (e) {
      if (e.retryable) {
        this.count('reconnects');
        return this.#once(method, path, body, headers, timeoutMs);
      }
      throw e;
    }
  }

  #once(method, path, body, headers, timeoutMs) {
    return new Promise((resolve, reject) => {
      const payload = body === null ? null : Buffer.from(body, 'utf8');
      const h = { 'user-agent': USER_AGENT, ...headers };
      if (payload) h['content-length'] = payload.length;
      let done = false;
      const req = this.module.request(
        {
          protocol: this.url.protocol,
          hostname: this.url.hostname.replace(/^\[|\]$/g, ''),
          port: this.url.port || undefined,
          path: this.prefix + path,
          method,
          headers: h,
          agent: this.agent,
        },
        (res) => {
          const chunks = [];
          let size = 0;
          res.on('data', (chunk) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              fail(new ProtocolError(`aegis: ${method} ${path}: the answer is over 8 MiB`));
              res.destroy();
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            resolve({
              status: res.statusCode,
              headers: res.headers,
              text: Buffer.concat(chunks).toString('utf8'),
            });
          });
          res.on('error', (e) => fail(unavailable(method, path, e)));
          res.on('aborted', () => fail(unavailable(method, path, new Error('answer cut short'))));
        },
      );
      const fail = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new AegisUnavailable(
          `aegis: ${method} ${path}: no answer from Aegis within ${timeoutMs} ms`));
        req.destroy();
      }, timeoutMs);
      // Requests are small and answered at once: no Nagle delay.
      req.on('socket', (socket) => socket.setNoDelay(true));
      req.on('error', (e) => {
        const err = unavailable(method, path, e);
        if (req.reusedSocket && RETRYABLE_ON_REUSED.has(e.code)) err.retryable = true;
        fail(err);
      });
      if (payload) req.end(payload);
      else req.end();
    });
  }

  /** Closes every connection; the Transport can still be used (it opens new ones). */
  close() {
    this.agent.destroy();
  }
}

function unavailable(method, path, cause) {
  const what = cause && cause.code ? `${cause.code} ${cause.message}` : String(cause && cause.message);
  return new AegisUnavailable(`aegis: ${method} ${path}: Aegis is unreachable (${what})`, { cause });
}
