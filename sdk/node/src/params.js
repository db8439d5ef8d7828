// Arguments to params: how a wrapped function's arguments become the call's `params` object, and
// how redacted params from a sanitize decision go back onto the arguments.
//
// The rule (README.md, "Arguments and params"), in order:
//  1. `params: (...args) => object` given: its result (a plain object).
//  2. `paramNames: [...]` given: the i-th argument under the i-th name.
//  3. Otherwise the function's own parameter list, read from its source text: simple names
//     (`amount`, `currency = "usd"`, `...rest`), or a single object pattern
//     (`({amount, currency = "usd"})`), whose argument maps to its own keys. A function whose
//     source cannot be read (bound, native) maps a single plain-object argument to its own keys.
// Defaults are applied as JavaScript applies them (an argument that is undefined or missing takes
// its default); a default must be a literal (a number, string, boolean, null, or an array or
// object literal of those) unless `defaults` gives its value. An argument that is undefined and
// has no default is left out. Values are encoded as JSON, strictly (encodeValue).

import { isWellFormed } from './digest.js';
import { ParamsError } from './errors.js';

/**
 * The JSON value of `value`, strictly: plain objects, arrays, strings, finite numbers, booleans,
 * null, and objects with a toJSON method (Date) are encoded as JSON.stringify encodes them, a Map
 * with string keys as an object; an undefined member of an object is left out (an undefined array
 * element is null). Anything else (BigInt, functions, symbols, NaN and Infinity, cycles, Set,
 * class instances, strings with a lone surrogate, nesting deeper than 62 levels) throws
 * ParamsError naming the path. Returns a fresh copy.
 */
export function encodeValue(value, path = 'params') {
  return encode(value, path, new Set(), '', path === 'params' ? 0 : 1);
}

// The gateway refuses JSON nested deeper than 64 levels; the call object and `params` take two.
const MAX_DEPTH = 62;

function encode(value, path, ancestors, key, depth) {
  if (value === null) return null;
  switch (typeof value) {
    case 'string':
      if (!isWellFormed(value)) {
        throw new ParamsError(`${path} is a string with a lone surrogate, which is not UTF-8`, path);
      }
      return value;
    case 'boolean':
      return value;
    case 'number':
      if (!Number.isFinite(value)) {
        throw new ParamsError(`${path} is ${value}, which JSON cannot carry`, path);
      }
      return value;
    case 'undefined':
      return undefined;
    case 'bigint':
      throw new ParamsError(
        `${path} is a BigInt, which JSON cannot carry: pass a number or a string`, path);
    case 'function':
      throw new ParamsError(`${path} is a function, which JSON cannot carry`, path);
    case 'symbol':
      throw new ParamsError(`${path} is a symbol, which JSON cannot carry`, path);
    default:
      break;
  }
  if (ancestors.has(value)) throw new ParamsError(`${path} refers back to itself (a cycle)`, path);
  if (depth >= MAX_DEPTH) {
    throw new ParamsError(`${path} is nested deeper than ${MAX_DEPTH} levels`, path);
  }
  if (typeof value.toJSON === 'function') {
    ancestors.add(value);
    try {
      return encode(value.toJSON(key), path, ancestors, key, depth);
    } finally {
      ancestors.delete(value);
    }
  }
  ancestors.add(value);
  try {
    if (Array.isArray(value)) {
      return value.map((item, i) => {
        const v = encode(item, `${path}[${i}]`, ancestors, String(i), depth + 1);
        return v === undefined ? null : v;
      });
    }
    if (value instanceof Map) {
      const out = {};
      for (const [k, item] of value) {
        if (typeof k !== 'string') {
          throw new ParamsError(`${path} is a Map with a ${typeof k} key; JSON keys are strings`, path);
        }
        const v = encode(item, `${path}.${k}`, ancestors, k, depth + 1);
        if (v !== undefined) out[k] = v;
      }
      return out;
    }
    if (!isPlainObject(value)) {
      const kind = value.constructor && value.constructor.name ? value.constructor.name : 'object';
      throw new ParamsError(
        `${path} is a ${kind}, which has no JSON form: pass a plain object, or give it a ` +
          'toJSON method, or give enforce a params function', path);
    }
    const out = {};
    for (const k of Object.keys(value)) {
      const v = encode(value[k], `${path}.${k}`, ancestors, k, depth + 1);
      if (v !== undefined) out[k] = v;
    }
    return out;
  } finally {
    ancestors.delete(value);
  }
}

/** An object made by `{}`, `Object.create(null)` or JSON.parse: not an instance of a class. */
export function isPlainObject(v) {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** Encodes a params object (ParamsError unless it is a plain object of JSON values). */
export function encodeParams(params) {
  if (params === undefined || params === null) return {};
  if (!isPlainObject(params)) throw new ParamsError('params must be a plain object', 'params');
  return encodeValue(params, 'params');
}

// ---------------------------------------------------------------------------------------------
// Reading a function's parameter list.

/**
 * How a function's arguments map to params, from its source text:
 *   {kind: 'names', names: [{name, rest, hasDefault, defaultKnown, default, text}]}
 *   {kind: 'object', keys: [...], defaults: {key: value}, unknownDefaults: [...]}
 *   {kind: 'unreadable', why}
 */
export function readParameters(fn) {
  let source;
  try {
    source = Function.prototype.toString.call(fn);
  } catch {
    return { kind: 'unreadable', why: 'its source cannot be read' };
  }
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    return { kind: 'unreadable', why: 'it is native or bound' };
  }
  if (/^\s*class[\s{]/.test(source)) return { kind: 'unreadable', why: 'it is a class' };
  const list = parameterListText(source);
  if (list === null) return { kind: 'unreadable', why: 'its parameter list cannot be parsed' };
  const pieces = splitTopLevel(list, ',').map((p) => p.trim()).filter((p) => p !== '');
  if (pieces.length === 1 && pieces[0].startsWith('{')) {
    const { pattern, defaultText } = splitDefault(pieces[0]);
    if (defaultText !== null && !isLiteral(defaultText)) {
      return { kind: 'unreadable', why: `its object parameter has a default that is not a literal` };
    }
    const obj = readObjectPattern(pattern);
    if (obj) return obj;
    return { kind: 'unreadable', why: 'its object parameter cannot be parsed' };
  }
  const names = [];
  for (const piece of pieces) {
    let p = piece;
    const rest = p.startsWith('...');
    if (rest) p = p.slice(3).trim();
    const { pattern, defaultText } = splitDefault(p);
    if (!/^[A-Za-z_$][\w$]*$/.test(pattern)) {
      return { kind: 'unreadable', why: `parameter "${piece}" is a pattern, not a name` };
    }
    const entry = { name: pattern, rest, hasDefault: defaultText !== null, text: defaultText };
    if (defaultText !== null) {
      const lit = literalValue(defaultText);
      entry.defaultKnown = lit.ok;
      entry.default = lit.value;
    }
    names.push(entry);
  }
  return { kind: 'names', names };
}

// The text between the parentheses of the parameter list (or the single name of `x => ...`).
function parameterListText(source) {
  const arrow = /^\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/.exec(source);
  if (arrow) return arrow[1];
  // Skip to the first "(" outside strings, comments and a computed method name's brackets.
  const s = source;
  let i = 0;
  let depth = 0;
  while (i < s.length) {
    const c = s[i];
    const skipped = skipNonCode(s, i);
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    if (c === '[') depth++;
    else if (c === ']') depth--;
    else if (c === '(' && depth === 0) break;
    else if ((c === '{' || c === '=') && depth === 0) return null;
    i++;
  }
  if (i >= s.length) return null;
  const start = i + 1;
  depth = 0;
  for (let j = i; j < s.length; ) {
    const skipped = skipNonCode(s, j);
    if (skipped !== j) {
      j = skipped;
      continue;
    }
    const c = s[j];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') {
      depth--;
      if (depth === 0) return c === ')' ? stripComments(s.slice(start, j)) : null;
    }
    j++;
  }
  return null;
}

// If s[i] starts a string, template or comment, the index just past it; else i.
function skipNonCode(s, i) {
  const c = s[i];
  if (c === '"' || c === "'" || c === '`') {
    let j = i + 1;
    let depth = 0;
    while (j < s.length) {
      if (s[j] === '\\') {
        j += 2;
        continue;
      }
      if (c === '`' && s[j] === '$' && s[j + 1] === '{') {
        depth++;
        j += 2;
        continue;
      }
      if (c === '`' && depth > 0 && s[j] === '}') {
        depth--;
        j++;
        continue;
      }
      if (s[j] === c && depth === 0) return j + 1;
      j++;
    }
    return s.length;
  }
  if (c === '/' && s[i + 1] === '/') {
    const end = s.indexOf('\n', i);
    return end < 0 ? s.length : end + 1;
  }
  if (c === '/' && s[i + 1] === '*') {
    const end = s.indexOf('*/', i + 2);
    return end < 0 ? s.length : end + 2;
  }
  return i;
}

function stripComments(s) {
  let out = '';
  for (let i = 0; i < s.length; ) {
    const j = skipNonCode(s, i);
    if (j === i) {
      out += s[i++];
    } else {
      if (s[i] !== '/') out += s.slice(i, j);
      else out += ' ';
      i = j;
    }
  }
  return out;
}

// Splits at `sep` outside brackets, strings and templates.
function splitTopLevel(s, sep) {
  const parts = [];
  let depth = 0;
  let last = 0;
  for (let i = 0; i < s.length; ) {
    const j = skipNonCode(s, i);
    if (j !== i) {
      i = j;
      continue;
    }
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === sep && depth === 0) {
      parts.push(s.slice(last, i));
      last = i + 1;
    }
    i++;
  }
  parts.push(s.slice(last));
  return parts;
}

// "name = default" -> {pattern: "name", defaultText: "default"}; the first top-level "=" that is
// not part of "=>", "==" or "=".
function splitDefault(s) {
  let depth = 0;
  for (let i = 0; i < s.length; ) {
    const j = skipNonCode(s, i);
    if (j !== i) {
      i = j;
      continue;
    }
    const c = s[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (c === '=' && depth === 0 && s[i + 1] !== '>' && s[i + 1] !== '=') {
      return { pattern: s.slice(0, i).trim(), defaultText: s.slice(i + 1).trim() };
    }
    i++;
  }
  return { pattern: s.trim(), defaultText: null };
}

function readObjectPattern(pattern) {
  if (!pattern.startsWith('{') || !pattern.endsWith('}')) return null;
  const inner = pattern.slice(1, -1);
  const keys = [];
  const defaults = {};
  const unknownDefaults = [];
  for (let piece of splitTopLevel(inner, ',')) {
    piece = piece.trim();
    if (piece === '') continue;
    if (piece.startsWith('...')) continue; // the rest of the keys: all own keys are taken anyway
    const colon = splitTopLevel(piece, ':');
    let key;
    let valuePart;
    if (colon.length > 1) {
      key = colon[0].trim();
      valuePart = colon.slice(1).join(':');
    } else {
      const { pattern: name } = splitDefault(piece);
      key = name;
      valuePart = piece;
    }
    const quoted = /^(['"])(.*)\1$/.exec(key);
    if (quoted) key = quoted[2];
    else if (!/^[A-Za-z_$][\w$]*$/.test(key)) return null;
    keys.push(key);
    const { defaultText } = splitDefault(valuePart);
    if (defaultText !== null) {
      const lit = literalValue(defaultText);
      if (lit.ok) defaults[key] = lit.value;
      else unknownDefaults.push(key);
    }
  }
  return { kind: 'object', keys, defaults, unknownDefaults };
}

function isLiteral(text) {
  return literalValue(text).ok;
}

// The value of a literal default, or {ok: false}: numbers (1, -2.5, .5, 1_000, 0x10), strings in
// any quotes (a template without substitutions), true, false, null, undefined, and arrays and
// object literals of those (keys bare, quoted or numeric; trailing commas allowed). Anything else
// (a name, a call, an expression) is not a literal: its value is only known when the call runs.
function literalValue(text) {
  const p = { s: text, i: 0 };
  try {
    const value = literal(p);
    space(p);
    if (p.i !== p.s.length) return { ok: false };
    return { ok: true, value };
  } catch {
    return { ok: false };
  }
}

const NOT_LITERAL = new Error('not a literal');

function space(p) {
  while (p.i < p.s.length && /\s/.test(p.s[p.i])) p.i++;
}

function literal(p) {
  space(p);
  const c = p.s[p.i];
  if (c === '{') {
    p.i++;
    const out = {};
    for (;;) {
      space(p);
      if (p.s[p.i] === '}') {
        p.i++;
        return out;
      }
      let key;
      const k = p.s[p.i];
      if (k === '"' || k === "'") key = stringLiteral(p);
      else {
        const m = /^(?:[A-Za-z_$][\w$]*|\d+)/.exec(p.s.slice(p.i));
        if (!m) throw NOT_LITERAL;
        key = m[0];
        p.i += m[0].length;
      }
      space(p);
      if (p.s[p.i] !== ':') throw NOT_LITERAL; // {a} refers to a variable
      p.i++;
      out[key] = literal(p);
      space(p);
      if (p.s[p.i] === ',') p.i++;
      else if (p.s[p.i] !== '}') throw NOT_LITERAL;
    }
  }
  if (c === '[') {
    p.i++;
    const out = [];
    for (;;) {
      space(p);
      if (p.s[p.i] === ']') {
        p.i++;
        return out;
      }
      out.push(literal(p));
      space(p);
      if (p.s[p.i] === ',') p.i++;
      else if (p.s[p.i] !== ']') throw NOT_LITERAL;
    }
  }
  if (c === '"' || c === "'" || c === '`') return stringLiteral(p);
  const rest = p.s.slice(p.i);
  const num = /^[+-]?(?:0[xX][\da-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)(?![\w$])/.exec(rest);
  if (num) {
    p.i += num[0].length;
    const t = num[0].replace(/_/g, '');
    const sign = t[0] === '-' ? -1 : 1;
    const n = sign * Number(t.replace(/^[+-]/, ''));
    if (!Number.isFinite(n)) throw NOT_LITERAL;
    return n;
  }
  const word = /^[A-Za-z_$][\w$]*/.exec(rest);
  if (word) {
    p.i += word[0].length;
    const values = { true: true, false: false, null: null, undefined };
    if (!Object.hasOwn(values, word[0])) throw NOT_LITERAL;
    return values[word[0]];
  }
  throw NOT_LITERAL;
}

const ESCAPES = { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', 0: '\0' };

function stringLiteral(p) {
  const quote = p.s[p.i++];
  let out = '';
  while (p.i < p.s.length) {
    const c = p.s[p.i++];
    if (c === quote) return out;
    if (quote === '`' && c === '$' && p.s[p.i] === '{') throw NOT_LITERAL;
    if (c !== '\\') {
      if ((c === '\n' || c === '\r') && quote !== '`') throw NOT_LITERAL;
      out += c;
      continue;
    }
    const e = p.s[p.i++];
    if (Object.hasOwn(ESCAPES, e) && !(e === '0' && /\d/.test(p.s[p.i]))) out += ESCAPES[e];
    else if (e === 'x') {
      const h = /^[\da-fA-F]{2}/.exec(p.s.slice(p.i));
      if (!h) throw NOT_LITERAL;
      out += String.fromCharCode(parseInt(h[0], 16));
      p.i += 2;
    } else if (e === 'u') {
      const h = /^(?:[\da-fA-F]{4}|\{[\da-fA-F]{1,6}\})/.exec(p.s.slice(p.i));
      if (!h) throw NOT_LITERAL;
      out += String.fromCodePoint(parseInt(h[0].replace(/[{}]/g, ''), 16));
      p.i += h[0].length;
    } else if (e === '\r' || e === '\n') {
      if (e === '\r' && p.s[p.i] === '\n') p.i++; // a line continuation
    } else if (e === undefined || /[1-9]/.test(e)) {
      throw NOT_LITERAL;
    } else {
      out += e;
    }
  }
  throw NOT_LITERAL;
}

// ---------------------------------------------------------------------------------------------
// Mapping arguments.

/**
 * A mapper for `fn` under enforce's options {params, paramNames, defaults, applyParams}:
 * `toParams(args)` gives the encoded params; `applySanitized(args, params, sanitized)` gives the
 * arguments to run with after a sanitize decision. Throws ParamsError now (at wrap time) when the
 * rule cannot be applied to `fn`.
 */
export function argumentMapper(fn, options = {}) {
  const defaults = options.defaults || {};
  const label = fn.name ? `${fn.name}()` : 'the function';
  if (options.params) {
    if (typeof options.params !== 'function') {
      throw new ParamsError('params must be a function (...args) => object');
    }
    return {
      toParams(args) {
        return encodeParams(options.params(...args));
      },
      applySanitized(args, sent, sanitized) {
        if (options.applyParams) return options.applyParams(sanitized, args);
        throw new ParamsError(
          'a sanitize decision redacted the params, and a params function gives no way back to ' +
            'the arguments: give enforce applyParams(sanitizedParams, args) => args');
      },
    };
  }
  let spec;
  if (options.paramNames) {
    if (!Array.isArray(options.paramNames)) throw new ParamsError('paramNames must be an array');
    spec = {
      kind: 'names',
      names: options.paramNames.map((n) => {
        const rest = n.startsWith('...');
        const name = rest ? n.slice(3) : n;
        return { name, rest, hasDefault: false };
      }),
    };
  } else {
    spec = readParameters(fn);
  }
  if (spec.kind === 'names') {
    for (const [i, p] of spec.names.entries()) {
      if (p.rest && i !== spec.names.length - 1) {
        throw new ParamsError(`${label}: only the last parameter can be a rest parameter`);
      }
      if (Object.hasOwn(defaults, p.name)) {
        p.hasDefault = true;
        p.defaultKnown = true;
        p.default = defaults[p.name];
      } else if (p.hasDefault && !p.defaultKnown) {
        throw new ParamsError(
          `${label}: the default of parameter "${p.name}" (${p.text}) is not a literal: give ` +
            `enforce defaults: {${p.name}: ...}`);
      }
    }
    return namesMapper(spec.names, label);
  }
  if (spec.kind === 'object') {
    const objDefaults = { ...spec.defaults, ...defaults };
    const missing = spec.unknownDefaults.filter((k) => !Object.hasOwn(defaults, k));
    if (missing.length) {
      throw new ParamsError(
        `${label}: the default of "${missing[0]}" is not a literal: give enforce defaults: ` +
          `{${missing[0]}: ...}`);
    }
    return objectMapper(objDefaults, label, true);
  }
  return objectMapper(defaults, label, false, spec.why);
}

function namesMapper(names, label) {
  return {
    toParams(args) {
      const hasRest = names.length && names[names.length - 1].rest;
      if (!hasRest && args.length > names.length) {
        throw new ParamsError(
          `${label} was called with ${args.length} arguments and declares ${names.length} ` +
            `(${names.map((n) => n.name).join(', ')}): an argument without a name cannot be sent`);
      }
      const raw = {};
      names.forEach((p, i) => {
        if (p.rest) {
          raw[p.name] = args.slice(i);
          return;
        }
        let v = args[i];
        if (v === undefined && p.hasDefault) v = p.default;
        if (v !== undefined) raw[p.name] = v;
      });
      return encodeValue(raw, 'params');
    },
    applySanitized(args, sent, sanitized) {
      const out = args.slice();
      names.forEach((p, i) => {
        if (!changed(sent, sanitized, p.name)) return;
        if (p.rest) {
          out.splice(i, out.length - i, ...(sanitized[p.name] || []));
          return;
        }
        while (out.length < i) out.push(undefined);
        out[i] = sanitized[p.name];
      });
      return out;
    },
  };
}

function objectMapper(defaults, label, declared, why) {
  return {
    toParams(args) {
      let obj;
      if (args.length === 0 || (args.length === 1 && args[0] === undefined)) obj = {};
      else if (args.length === 1 && isPlainObject(args[0])) obj = args[0];
      else if (declared) {
        throw new ParamsError(`${label} takes one plain-object argument`);
      } else {
        throw new ParamsError(
          `the parameter names of ${label} cannot be read (${why}): give enforce paramNames ` +
            'or a params function, or call it with one plain-object argument');
      }
      const raw = { ...defaults };
      for (const k of Object.keys(obj)) if (obj[k] !== undefined) raw[k] = obj[k];
      return encodeValue(raw, 'params');
    },
    applySanitized(args, sent, sanitized) {
      const original = args.length && isPlainObject(args[0]) ? args[0] : {};
      const merged = { ...original };
      for (const k of Object.keys(sanitized)) {
        if (changed(sent, sanitized, k)) merged[k] = sanitized[k];
      }
      return [merged, ...args.slice(1)];
    },
  };
}

// Whether the sanitize decision changed the top-level param `k` (values are compared as JSON, so
// arguments the policy left alone are passed on as they were: same objects, Dates as Dates).
function changed(sent, sanitized, k) {
  if (!Object.hasOwn(sanitized, k)) return false;
  return JSON.stringify(sortKeys(sent[k])) !== JSON.stringify(sortKeys(sanitized[k]));
}

function sortKeys(v) {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = sortKeys(v[k]);
    return out;
  }
  return v;
}
