/**
 * Python literals. PaddleClas runs ast.literal_eval on every string; no JS library parses Python literal syntax
 * (single-quoted strings, True/False/None, tuples, 1_000, 0o17), so this small recursive-descent parser does.
 */
import { ConfigError } from '../errors.js';

const NUMBER_RE = new RegExp(
  '^(?:' +
    [
      '0[xX](?:_?[0-9a-fA-F])+',
      '0[oO](?:_?[0-7])+',
      '0[bB](?:_?[01])+',
      '(?:\\d(?:_?\\d)*)?\\.\\d(?:_?\\d)*(?:[eE][+-]?\\d(?:_?\\d)*)?',
      '\\d(?:_?\\d)*\\.(?:[eE][+-]?\\d(?:_?\\d)*)?',
      '\\d(?:_?\\d)*[eE][+-]?\\d(?:_?\\d)*',
      '[1-9](?:_?\\d)*',
      '0(?:_?0)*',
    ].join('|') +
    ')',
);

class LiteralParser {
  private pos = 0;
  constructor(private readonly s: string) {}

  parseAll(): unknown {
    const v = this.value();
    this.ws();
    if (this.pos !== this.s.length) throw new SyntaxError('trailing characters');
    return v;
  }

  private ws(): void {
    while (this.pos < this.s.length && ' \t\n\r'.includes(this.s[this.pos])) this.pos++;
  }

  private value(): unknown {
    this.ws();
    const c = this.s[this.pos];
    if (c === '[') return this.sequence('[', ']');
    if (c === '(') return this.tuple();
    if (c === '{') return this.dict();
    if (c === "'" || c === '"') return this.string();
    return this.atom();
  }

  private sequence(open: string, close: string): unknown[] {
    this.pos++; // open
    const items: unknown[] = [];
    for (;;) {
      this.ws();
      if (this.s[this.pos] === close) {
        this.pos++;
        return items;
      }
      items.push(this.value());
      this.ws();
      if (this.s[this.pos] === ',') {
        this.pos++;
        continue;
      }
      if (this.s[this.pos] === close) {
        this.pos++;
        return items;
      }
      throw new SyntaxError(`expected , or ${close} in ${open}${close}`);
    }
  }

  /** `()` and `(a, b)` are tuples (arrays here); `(a)` is just a parenthesised a. */
  private tuple(): unknown {
    const start = this.pos;
    const items = this.sequence('(', ')');
    const inner = this.s.slice(start + 1, this.pos - 1).trim();
    return items.length === 1 && !inner.endsWith(',') ? items[0] : items;
  }

  private dict(): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    for (;;) {
      this.ws();
      if (this.s[this.pos] === '}') {
        this.pos++;
        return out;
      }
      const key = this.value();
      if (typeof key !== 'string' && typeof key !== 'number' && typeof key !== 'boolean')
        throw new SyntaxError('unhashable key');
      this.ws();
      if (this.s[this.pos] !== ':') throw new SyntaxError('expected :'); // a set literal, which config values never are
      this.pos++;
      out[String(key)] = this.value();
      this.ws();
      if (this.s[this.pos] === ',') {
        this.pos++;
        continue;
      }
      if (this.s[this.pos] === '}') {
        this.pos++;
        return out;
      }
      throw new SyntaxError('expected , or }');
    }
  }

  private string(): string {
    const q = this.s[this.pos++];
    let out = '';
    while (this.pos < this.s.length) {
      const c = this.s[this.pos++];
      if (c === q) return out;
      if (c === '\n') break;
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.s[this.pos++];
      const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
      if (e in simple) out += simple[e];
      else if (e === 'x' || e === 'u') {
        const n = e === 'x' ? 2 : 4;
        const hex = this.s.slice(this.pos, this.pos + n);
        if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== n) throw new SyntaxError('bad escape');
        out += String.fromCharCode(parseInt(hex, 16));
        this.pos += n;
      } else out += `\\${e}`; // Python keeps unknown escapes verbatim
    }
    throw new SyntaxError('unterminated string');
  }

  private atom(): unknown {
    const rest = this.s.slice(this.pos);
    const word = /^[A-Za-z_]\w*/.exec(rest);
    if (word) {
      const consts: Record<string, unknown> = { True: true, False: false, None: null };
      if (!(word[0] in consts)) throw new SyntaxError(`name ${word[0]}`);
      this.pos += word[0].length;
      return consts[word[0]];
    }
    let sign = 1;
    while (this.s[this.pos] === '-' || this.s[this.pos] === '+') {
      if (this.s[this.pos] === '-') sign = -sign;
      this.pos++;
      this.ws();
    }
    const m = NUMBER_RE.exec(this.s.slice(this.pos));
    if (!m) throw new SyntaxError('not a literal');
    this.pos += m[0].length;
    if (/^[\w.]/.test(this.s.slice(this.pos))) throw new SyntaxError('not a literal'); // 1j, 1.2.3, 010
    const t = m[0].replace(/_/g, '');
    const prefixed = /^0[xob]/i.exec(t);
    const v = prefixed ? parseInt(t.slice(2), { x: 16, o: 8, b: 2 }[t[1].toLowerCase() as 'x' | 'o' | 'b']) : Number(t);
    return sign * v;
  }
}

/** ast.literal_eval for the literals configs contain; `undefined` when s is not a literal (it stays a string). */
export function parsePythonLiteral(s: string): { value: unknown } | undefined {
  const trimmed = s.replace(/^[ \t]+/, ''); // literal_eval strips leading spaces and tabs
  if (trimmed.trim() === '') return undefined;
  try {
    return { value: new LiteralParser(trimmed).parseAll() };
  } catch {
    return undefined;
  }
}

/** Replace every string that is a Python literal by its value, in maps and lists alike. */
export function typeLiterals(v: unknown): unknown {
  if (typeof v === 'string') {
    const lit = parsePythonLiteral(v);
    return lit ? lit.value : v;
  }
  if (Array.isArray(v)) return v.map(typeLiterals);
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, typeLiterals(x)]));
  return v;
}

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/**
 * NormalizeImage.scale: a number, or a string PaddleClas eval()s, like "1./255." or "1.0/255.0". Only numbers
 * joined by * and / (left to right) are accepted: a config is not a place to run code.
 */
export function evalScale(s: string | number): number {
  if (typeof s === 'number') {
    if (!Number.isFinite(s)) throw new ConfigError(`scale ${s} is not a finite number`);
    return s;
  }
  const num = '[+-]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][+-]?\\d+)?';
  const re = new RegExp(`^\\s*(${num})((?:\\s*[*/]\\s*${num})*)\\s*$`);
  const m = re.exec(s);
  if (!m)
    throw new ConfigError(`scale ${JSON.stringify(s)} is not a number or a product/quotient of numbers like "1./255."`);
  let v = Number(m[1]);
  for (const [, op, x] of m[2].matchAll(new RegExp(`\\s*([*/])\\s*(${num})`, 'g')))
    v = op === '*' ? v * Number(x) : v / Number(x);
  if (!Number.isFinite(v)) throw new ConfigError(`scale ${JSON.stringify(s)} is not finite`);
  return v;
}
