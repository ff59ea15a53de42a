/**
 * Parser for the nats-server configuration language ("NATS conf", a relaxed JSON/HCL mix),
 * producing a tree in which every key and value keeps its file, line and column so that later
 * checks can point at the exact spot. Grammar and corner cases follow nats-server 2.9 as
 * observed with `nats-server -t -c` (see spec/config-and-monitoring.md §1); JSON documents are
 * accepted by the same grammar, with JSON's extra escapes, exponents and null when the file
 * name ends in `.json`.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, formatPos, type SourcePos } from './errors.js';

export interface ConfString {
  readonly kind: 'string';
  readonly value: string;
  readonly pos: SourcePos;
}
export interface ConfInt {
  readonly kind: 'int';
  readonly value: number;
  /** The literal as written (`2MB`), for messages: `2m` is a size, not a duration. */
  readonly raw: string;
  readonly pos: SourcePos;
}
export interface ConfFloat {
  readonly kind: 'float';
  readonly value: number;
  readonly pos: SourcePos;
}
export interface ConfBool {
  readonly kind: 'bool';
  readonly value: boolean;
  readonly pos: SourcePos;
}
export interface ConfDate {
  readonly kind: 'date';
  readonly value: Date;
  readonly pos: SourcePos;
}
/** Only in .json files. */
export interface ConfNull {
  readonly kind: 'null';
  readonly pos: SourcePos;
}
export interface ConfArray {
  readonly kind: 'array';
  readonly items: ConfNode[];
  readonly pos: SourcePos;
}
export interface ConfMap {
  readonly kind: 'map';
  /** Keys as written (case kept); a key defined twice keeps the later definition. */
  readonly entries: Map<string, ConfEntry>;
  readonly pos: SourcePos;
}
export type ConfNode = ConfString | ConfInt | ConfFloat | ConfBool | ConfDate | ConfNull | ConfArray | ConfMap;

export interface ConfEntry {
  readonly key: string;
  readonly keyPos: SourcePos;
  readonly value: ConfNode;
  /** Referenced as $key somewhere: such a key is a variable, not an unknown field. */
  usedAsVariable: boolean;
}

export interface ParseOptions {
  /** Environment for `$VAR` lookups that no enclosing map defines; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Accept JSON extras (\u escapes, exponents, null); default: file name ends in .json. */
  json?: boolean;
}

/** Reads and parses a config file; `include`s are resolved relative to it. */
export function parseConfigFile(file: string, opts: ParseOptions = {}): ConfMap {
  return parseFileInner(resolve(file), file, opts, []);
}

/** Parses config text; `file` names it in positions and anchors relative includes. */
export function parseConfig(text: string, file: string, opts: ParseOptions = {}): ConfMap {
  const abs = resolve(file);
  return new Parser(text, file, abs, opts, [abs]).parseDocument();
}

/** Case-insensitive entry lookup, as nats-server matches option names. */
export function getEntry(map: ConfMap, key: string): ConfEntry | undefined {
  const exact = map.entries.get(key);
  if (exact !== undefined) return exact;
  const want = key.toLowerCase();
  let found: ConfEntry | undefined;
  for (const e of map.entries.values()) if (e.key.toLowerCase() === want) found = e;
  return found;
}

/** A plain JavaScript value of the kind JSON.parse gives (dates stay Date). */
export type PlainValue = string | number | boolean | Date | null | PlainValue[] | { [key: string]: PlainValue };

export function toPlain(node: ConfNode): PlainValue {
  switch (node.kind) {
    case 'array':
      return node.items.map(toPlain);
    case 'map': {
      const out: { [key: string]: PlainValue } = {};
      for (const [k, e] of node.entries) out[k] = toPlain(e.value);
      return out;
    }
    case 'null':
      return null;
    default:
      return node.value;
  }
}

/** Human name of a node's type for error messages. */
export function kindName(node: ConfNode): string {
  switch (node.kind) {
    case 'int':
      return 'integer';
    case 'bool':
      return 'boolean';
    default:
      return node.kind;
  }
}

// ---------------------------------------------------------------------------------------------

const MAX_INCLUDE_DEPTH = 32;
const MAX_ENV_DEPTH = 8;
/** 2.9 treats only this prefix as a bcrypt hash rather than a variable. */
const BCRYPT_PREFIX = '$2a$';

const SIZE_BASE: Record<string, number> = { k: 1, m: 2, g: 3, t: 4, p: 5, e: 6 };
const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z$/;

function parseFileInner(abs: string, shown: string, opts: ParseOptions, stack: string[]): ConfMap {
  const text = readFileSync(abs, 'utf8');
  return new Parser(text, shown, abs, opts, [...stack, abs]).parseDocument();
}

type Context = 'top' | 'map';

class Parser {
  private i = 0;
  private readonly lineStarts: number[] = [0];
  /** Maps being filled, outermost first: where $VAR looks, innermost first. */
  private readonly scopes: ConfMap[] = [];
  private readonly json: boolean;
  private readonly env: NodeJS.ProcessEnv;

  constructor(
    private readonly src: string,
    private readonly file: string,
    private readonly absFile: string,
    private readonly opts: ParseOptions,
    private readonly includeStack: string[],
    private readonly envDepth = 0,
    /** When set (environment values), every node reports this position. */
    private readonly fixedPos?: SourcePos,
  ) {
    for (let k = 0; k < src.length; k++) if (src.charCodeAt(k) === 10) this.lineStarts.push(k + 1);
    this.json = opts.json ?? absFile.toLowerCase().endsWith('.json');
    this.env = opts.env ?? process.env;
    if (src.charCodeAt(0) === 0xfeff) this.i = 1;
  }

  parseDocument(): ConfMap {
    const top: ConfMap = { kind: 'map', entries: new Map(), pos: this.pos(this.i) };
    this.scopes.push(top);
    // The whole document may be wrapped in { } (which also makes JSON files valid input); like
    // nats-server, a missing closing brace is tolerated.
    this.skipGap();
    if (this.peek() === '{') this.i++;
    for (;;) {
      this.skipGap();
      const c = this.peek();
      if (c === '') break;
      if (c === '}') {
        this.i++;
        this.skipGap();
        if (this.peek() !== '') throw this.err(this.i, `unexpected ${this.describe(this.peek())} after the closing '}'`);
        break;
      }
      this.parseEntry(top, 'top');
    }
    return top;
  }

  // --- positions and errors ---

  private pos(index: number): SourcePos {
    if (this.fixedPos !== undefined) return this.fixedPos;
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= index) lo = mid;
      else hi = mid - 1;
    }
    return { file: this.file, line: lo + 1, col: index - this.lineStarts[lo]! + 1 };
  }

  private err(index: number, reason: string): ConfigError {
    return ConfigError.at(this.pos(index), reason);
  }

  private peek(offset = 0): string {
    return this.src.charAt(this.i + offset);
  }

  private describe(c: string): string {
    if (c === '') return 'EOF';
    if (c === '\n' || c === '\r') return 'new line';
    return `'${c}'`;
  }

  // --- trivia ---

  private skipSpaces(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t') this.i++;
      else return;
    }
  }

  /** At a comment start (# or //)? */
  private atComment(): boolean {
    const c = this.peek();
    return c === '#' || (c === '/' && this.peek(1) === '/');
  }

  private skipComment(): void {
    while (this.i < this.src.length && this.src.charCodeAt(this.i) !== 10) this.i++;
  }

  /** Whitespace, new lines, comments and stray terminators between entries. */
  private skipGap(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ';' || c === ',') this.i++;
      else if (this.atComment()) this.skipComment();
      else return;
    }
  }

  /** Whitespace, new lines and comments inside an array. */
  private skipArrayGap(): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.i++;
      else if (this.atComment()) this.skipComment();
      else return;
    }
  }

  // --- entries ---

  private parseEntry(map: ConfMap, ctx: Context): void {
    const keyStart = this.i;
    const keyPos = this.pos(keyStart);
    const c = this.peek();
    if (c === '=' || c === ':') throw this.err(this.i, `Unexpected key separator '${c}'`);
    let key: string;
    let bare = false;
    if (c === '"' || c === "'") {
      const end = this.src.indexOf(c, this.i + 1);
      if (end < 0) throw this.err(keyStart, 'Unexpected EOF in quoted key');
      key = this.src.slice(this.i + 1, end);
      this.i = end + 1;
    } else {
      bare = true;
      let k = this.i;
      while (k < this.src.length) {
        const ch = this.src[k]!;
        if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || ch === '=' || ch === ':') break;
        k++;
      }
      key = this.src.slice(this.i, k);
      this.i = k;
    }

    if (bare && key.toLowerCase() === 'include' && (this.peek() === ' ' || this.peek() === '\t')) {
      this.skipSpaces();
      this.parseInclude(map, keyStart);
      this.valueEnd(ctx);
      return;
    }

    this.skipSpaces();
    const sep = this.peek();
    if (sep === '=' || sep === ':') {
      this.i++;
      this.skipSpaces();
      const v = this.peek();
      if (v === '\n' || v === '\r') throw this.err(this.i, 'Expected value but found new line');
    } else {
      // No separator: `port 4222`. nats-server also lets the value start on a later line.
      while (/[ \t\r\n]/.test(this.peek()) && this.peek() !== '') this.i++;
    }
    if (this.peek() === '' || (this.peek() === '}' && ctx === 'map')) {
      throw ConfigError.at(keyPos, `Expected a value for key "${key}"`);
    }
    const value = this.parseValue();
    map.entries.delete(key);
    map.entries.set(key, { key, keyPos, value, usedAsVariable: false });
    this.valueEnd(ctx);
  }

  /** After a value: what may legally follow it in this context. */
  private valueEnd(ctx: Context): void {
    this.skipSpaces();
    if (this.atComment()) this.skipComment();
    const c = this.peek();
    if (c === '' || c === '\n' || c === '\r' || c === ';' || c === ',' || c === '}') return;
    if (ctx === 'top') {
      throw this.err(this.i, `Expected a top-level value to end with a new line, comment or EOF, but got ${this.describe(c)} instead.`);
    }
    throw this.err(this.i, `Expected a map value terminator "," or a map terminator "}", but got ${this.describe(c)} instead.`);
  }

  private parseInclude(map: ConfMap, keyStart: number): void {
    const at = this.i;
    let target: string;
    const q = this.peek();
    if (q === '"' || q === "'") {
      const end = this.src.indexOf(q, this.i + 1);
      if (end < 0) throw this.err(at, 'Unexpected EOF in include path');
      target = this.src.slice(this.i + 1, end);
      this.i = end + 1;
    } else {
      target = this.readBareRaw();
    }
    if (target === '') throw this.err(at, 'include needs a file path');
    const abs = resolve(dirname(this.absFile), target);
    const shown = isAbsolute(target) ? target : join(dirname(this.file), target);
    if (this.includeStack.includes(abs)) throw this.err(keyStart, `include cycle: '${target}' includes itself`);
    if (this.includeStack.length > MAX_INCLUDE_DEPTH) throw this.err(keyStart, 'includes nested too deep');
    let included: ConfMap;
    try {
      included = parseFileInner(abs, shown, { ...this.opts, env: this.env, json: abs.toLowerCase().endsWith('.json') }, this.includeStack);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
      throw this.err(at, `error parsing include file '${target}', ${(e as Error).message}`);
    }
    // The included file was parsed in its own scope; its keys join the current map.
    for (const [k, entry] of included.entries) {
      map.entries.delete(k);
      map.entries.set(k, entry);
    }
  }

  // --- values ---

  private parseValue(): ConfNode {
    const start = this.i;
    const c = this.peek();
    switch (c) {
      case '[':
        return this.parseArray();
      case '{':
        return this.parseMap();
      case '"':
        return this.parseDoubleQuoted();
      case "'":
        return this.parseSingleQuoted();
      case '(':
        return this.parseBlock();
      case '-':
        return this.parseNegative();
      case '.':
        throw this.err(start, 'Floats must start with a digit');
      case '\n':
      case '\r':
        throw this.err(start, 'Expected value but found new line');
      case '':
        throw this.err(start, 'Unexpected EOF, expected a value');
      default:
        break;
    }
    if (c >= '0' && c <= '9') return this.parseNumberish();
    return this.parseUnquoted();
  }

  private parseArray(): ConfArray {
    const node: ConfArray = { kind: 'array', items: [], pos: this.pos(this.i) };
    this.i++;
    for (;;) {
      this.skipArrayGap();
      const c = this.peek();
      if (c === ']') {
        this.i++;
        return node;
      }
      if (c === ',') throw this.err(this.i, "Unexpected array value terminator ','.");
      if (c === '') throw this.err(this.i, 'Unexpected EOF processing array.');
      node.items.push(this.parseValue());
      this.skipSpaces();
      if (this.atComment()) this.skipComment();
      const t = this.peek();
      if (t === ',' || t === '\n' || t === '\r') {
        this.i++;
      } else if (t === ']') {
        this.i++;
        return node;
      } else if (t === '') {
        throw this.err(this.i, 'Unexpected EOF processing array.');
      } else {
        throw this.err(this.i, `Expected an array value terminator "," or an array terminator "]", but got ${this.describe(t)} instead.`);
      }
    }
  }

  private parseMap(): ConfMap {
    const node: ConfMap = { kind: 'map', entries: new Map(), pos: this.pos(this.i) };
    this.i++;
    this.scopes.push(node);
    for (;;) {
      this.skipGap();
      const c = this.peek();
      if (c === '}') {
        this.i++;
        this.scopes.pop();
        return node;
      }
      if (c === '') throw this.err(this.i, 'Unexpected EOF processing map.');
      this.parseEntry(node, 'map');
    }
  }

  private parseDoubleQuoted(): ConfString {
    const start = this.i;
    this.i++;
    let out = '';
    let runStart = this.i;
    for (;;) {
      if (this.i >= this.src.length) throw this.err(start, 'Unexpected EOF in quoted string');
      const c = this.src[this.i]!;
      if (c === '"') {
        out += this.src.slice(runStart, this.i);
        this.i++;
        return { kind: 'string', value: out, pos: this.pos(start) };
      }
      if (c === '\\') {
        out += this.src.slice(runStart, this.i);
        out += this.readEscape();
        runStart = this.i;
      } else {
        this.i++;
      }
    }
  }

  /** At a backslash: returns the character it stands for and moves past it. */
  private readEscape(): string {
    const at = this.i;
    const e = this.src.charAt(this.i + 1);
    this.i += 2;
    switch (e) {
      case 't':
        return '\t';
      case 'n':
        return '\n';
      case 'r':
        return '\r';
      case '"':
        return '"';
      case '\\':
        return '\\';
      case 'x': {
        const hex = this.src.slice(this.i, this.i + 2);
        if (!/^[0-9a-fA-F]{2}$/.test(hex)) throw this.err(at, `Expected two hexadecimal digits after '\\x', but got '${hex}'`);
        this.i += 2;
        return String.fromCharCode(parseInt(hex, 16));
      }
      default:
        break;
    }
    if (this.json) {
      if (e === '/') return '/';
      if (e === 'b') return '\b';
      if (e === 'f') return '\f';
      if (e === 'u') {
        const hex = this.src.slice(this.i, this.i + 4);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw this.err(at, `Expected four hexadecimal digits after '\\u', but got '${hex}'`);
        this.i += 4;
        return String.fromCharCode(parseInt(hex, 16));
      }
    }
    throw this.err(at, `Invalid escape character '${e}'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\", \\\\.`);
  }

  private parseSingleQuoted(): ConfString {
    const start = this.i;
    const end = this.src.indexOf("'", this.i + 1);
    if (end < 0) throw this.err(start, 'Unexpected EOF in quoted string');
    this.i = end + 1;
    return { kind: 'string', value: this.src.slice(start + 1, end), pos: this.pos(start) };
  }

  /** `( ... )`: raw text up to a `)` alone at the start of a line. */
  private parseBlock(): ConfString {
    const start = this.i;
    let k = this.i + 1;
    for (;;) {
      const close = this.src.indexOf('\n)', k);
      if (close < 0) throw this.err(start, 'Unexpected EOF processing block.');
      const after = this.src.charAt(close + 2);
      if (after === '' || after === '\n' || (after === '\r' && this.src.charAt(close + 3) === '\n')) {
        this.i = close + 2;
        return { kind: 'string', value: this.src.slice(start + 1, close + 1), pos: this.pos(start) };
      }
      k = close + 1;
    }
  }

  /** Characters up to a value terminator, as written (no escapes). */
  private readBareRaw(): string {
    const s = this.i;
    while (this.i < this.src.length && !isValueTerminator(this.src[this.i]!)) this.i++;
    return this.src.slice(s, this.i);
  }

  private parseUnquoted(): ConfNode {
    const start = this.i;
    const pos = this.pos(start);
    let out = '';
    let escaped = false;
    let runStart = this.i;
    while (this.i < this.src.length) {
      const c = this.src[this.i]!;
      if (isValueTerminator(c)) break;
      if (c === '\\') {
        out += this.src.slice(runStart, this.i);
        out += this.readEscape();
        runStart = this.i;
        escaped = true;
        continue;
      }
      if (c === "'") {
        // nats-server ends an unquoted string at a single quote and drops the quote.
        out += this.src.slice(runStart, this.i);
        this.i++;
        return { kind: 'string', value: out, pos };
      }
      this.i++;
    }
    out += this.src.slice(runStart, this.i);
    if (escaped) return { kind: 'string', value: out, pos };
    const lower = out.toLowerCase();
    if (lower === 'true' || lower === 'yes' || lower === 'on') return { kind: 'bool', value: true, pos };
    if (lower === 'false' || lower === 'no' || lower === 'off') return { kind: 'bool', value: false, pos };
    if (this.json && out === 'null') return { kind: 'null', pos };
    if (out.length > 1 && out[0] === '$' && !out.startsWith(BCRYPT_PREFIX)) return this.resolveVariable(out.slice(1), start);
    return { kind: 'string', value: out, pos };
  }

  private parseNegative(): ConfNode {
    const start = this.i;
    const next = this.peek(1);
    if (!(next >= '0' && next <= '9')) throw this.err(start, `Expected a digit but got ${this.describe(next)}.`);
    const raw = this.readBareRaw();
    const pos = this.pos(start);
    const sized = sizedInt(raw.slice(1));
    if (sized !== undefined) {
      if (sized === 'bad-suffix') throw this.err(start, `invalid size suffix in '${raw}'`);
      return { kind: 'int', value: -sized, raw, pos };
    }
    if (/^-\d+\.\d+$/.test(raw) || (this.json && /^-\d+(\.\d+)?[eE][+-]?\d+$/.test(raw))) {
      return { kind: 'float', value: Number(raw), pos };
    }
    throw this.err(start, `invalid number '${raw}'`);
  }

  /** A value starting with a digit: integer (maybe with a size suffix), float, date, IP or string. */
  private parseNumberish(): ConfNode {
    const start = this.i;
    const raw = this.readBareRaw();
    const pos = this.pos(start);
    const sized = sizedInt(raw);
    if (sized !== undefined) {
      if (sized === 'bad-suffix') throw this.err(start, `invalid size suffix in '${raw}'`);
      return { kind: 'int', value: sized, raw, pos };
    }
    if (/^\d+\.\d+$/.test(raw) || (this.json && /^\d+(\.\d+)?[eE][+-]?\d+$/.test(raw))) {
      return { kind: 'float', value: Number(raw), pos };
    }
    const date = DATE_RE.exec(raw);
    if (date !== null) {
      const [, y, mo, d, h, mi, s] = date;
      const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
      return { kind: 'date', value: new Date(ms), pos };
    }
    if (/^\d+-/.test(raw)) throw this.err(start, 'All ISO8601 dates must be in full Zulu form.');
    // Addresses such as 127.0.0.1 or 127.0.0.1:4222 are strings.
    if (/^\d+\.\d+[.:][\d.:]*$/.test(raw)) return { kind: 'string', value: raw, pos };
    if (/^\d+\./.test(raw)) throw this.err(start, `invalid float '${raw}'`);
    if (/^\d+[kmgtpe][bi]*\d/i.test(raw)) throw this.err(start, `invalid number '${raw}'`);
    // Digits followed by other text (10s, 1h30m, 500ms): a string.
    return { kind: 'string', value: raw, pos };
  }

  // --- variables ---

  private resolveVariable(name: string, refIndex: number): ConfNode {
    const refPos = this.pos(refIndex);
    for (let s = this.scopes.length - 1; s >= 0; s--) {
      const entry = this.scopes[s]!.entries.get(name);
      if (entry !== undefined) {
        entry.usedAsVariable = true;
        return withPos(entry.value, refPos);
      }
    }
    const envValue = this.env[name];
    if (envValue !== undefined) {
      if (this.envDepth >= MAX_ENV_DEPTH) throw ConfigError.at(refPos, `environment variable '${name}' refers to variables too deeply`);
      // An environment value is read as a config value: "123" becomes a number.
      const sub = new Parser(`v=${envValue}`, this.file, this.absFile, { ...this.opts, json: false }, this.includeStack, this.envDepth + 1, refPos);
      let doc: ConfMap;
      try {
        doc = sub.parseDocument();
      } catch (e) {
        if (e instanceof ConfigError && this.envDepth === 0) {
          const inner = e.message.startsWith(formatPos(refPos) + ': ') ? e.message.slice(formatPos(refPos).length + 2) : e.message;
          throw ConfigError.at(refPos, `error parsing environment variable '${name}': ${inner}`);
        }
        throw e;
      }
      const v = doc.entries.get('v');
      if (v !== undefined) return v.value;
    }
    throw ConfigError.at(refPos, `variable reference for '${name}' on line ${refPos.line} can not be found`);
  }
}

function isValueTerminator(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',' || c === ';' || c === ']' || c === '}';
}

/**
 * `123`, `2MB`, `1k`... -> the number; `'bad-suffix'` for digits + size letter + an unknown tail
 * (`1kbb`); undefined when raw is not an integer literal at all.
 */
function sizedInt(raw: string): number | 'bad-suffix' | undefined {
  const m = /^(\d+)(?:([kmgtpe])([bi]*))?$/i.exec(raw);
  if (m === null) return undefined;
  const n = Number(m[1]);
  if (m[2] === undefined) return n;
  const tail = m[3]!.toLowerCase();
  const exp = SIZE_BASE[m[2].toLowerCase()]!;
  if (tail === '') return n * 1000 ** exp;
  if (tail === 'b' || tail === 'i' || tail === 'ib') return n * 1024 ** exp;
  return 'bad-suffix';
}

/** The same value reported at another position (where a variable was referenced). */
function withPos(node: ConfNode, pos: SourcePos): ConfNode {
  return { ...node, pos } as ConfNode;
}
