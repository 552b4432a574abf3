// `counter` in C: the same executor function as the Rust guest
// `guest/counter`, written against the bindings `wit-bindgen c` generates
// from `wit/executor.wit` (`executor.h`), to show that the WIT world is the
// contract and the Rust SDK one way to meet it.
//
// Read one key, write it back incremented, halt. The executable is JSON
// `{"key": "<key>", "amount": <u64>}` (as serde reads a struct: also the
// array `["<key>", <u64>]`; no other field, none twice); the value is a
// decimal ASCII u64, absent is 0. Declared eager, the first step runs on the
// value; declared lazy, it runs without input and asks for it. Overflow is
// an error. States, requests and error messages are the Rust guest's: the
// executable's parser follows serde_json's, errors and their positions
// included (two exceptions below, at the parser).
//
// Build and run: README.md, "A guest in C". Memory comes from `arena.c`,
// which never reuses it (every step runs in a fresh instance); what is
// allocated is freed all the same, so this runs on any malloc.

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"

// ---------------------------------------------------------------------------
// Growable bytes. Allocation failure traps (`abort` is `unreachable` in
// wasi-libc), as an out-of-memory Rust guest does. (`malloc` and friends
// are `arena.c`'s.)

typedef struct {
  uint8_t *ptr;
  size_t len;
  size_t cap;
} buf_t;

static void buf_reserve(buf_t *buf, size_t extra) {
  if (extra <= buf->cap - buf->len) return;
  if (extra > SIZE_MAX / 2 - buf->len) abort();
  size_t cap = buf->cap * 2 > buf->len + extra ? buf->cap * 2 : buf->len + extra;
  if (cap < 16) cap = 16;
  uint8_t *ptr = realloc(buf->ptr, cap);
  if (ptr == NULL) abort();
  buf->ptr = ptr;
  buf->cap = cap;
}

static void buf_push(buf_t *buf, const void *bytes, size_t len) {
  if (len == 0) return;
  buf_reserve(buf, len);
  memcpy(buf->ptr + buf->len, bytes, len);
  buf->len += len;
}

static void buf_byte(buf_t *buf, uint8_t byte) {
  buf_reserve(buf, 1);
  buf->ptr[buf->len++] = byte;
}

static void buf_str(buf_t *buf, const char *s) { buf_push(buf, s, strlen(s)); }

// `value` in decimal, shortest form (`example_decimal::encode`).
static void buf_u64(buf_t *buf, uint64_t value) {
  char digits[20];
  size_t n = 0;
  do {
    digits[sizeof digits - ++n] = (char)('0' + value % 10);
    value /= 10;
  } while (value != 0);
  buf_push(buf, digits + sizeof digits - n, n);
}

static void buf_hex(buf_t *buf, uint32_t value) {
  char digits[8];
  size_t n = 0;
  do {
    digits[sizeof digits - ++n] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  buf_push(buf, digits + sizeof digits - n, n);
}

// A copy of bytes as a list the host takes (and `cabi_post_*` frees).
static executor_list_u8_t list_of(const void *bytes, size_t len) {
  buf_t buf = {0};
  buf_push(&buf, bytes, len);
  return (executor_list_u8_t){buf.ptr, buf.len};
}

static bool list_is(const executor_list_u8_t *list, const char *s) {
  return list->len == strlen(s) && memcmp(list->ptr, s, list->len) == 0;
}

// ---------------------------------------------------------------------------
// Rust's `format!("{:?}", String::from_utf8_lossy(bytes))`: invalid UTF-8
// becomes U+FFFD per maximal subpart (as `from_utf8_lossy` does), then
// `str`'s `Debug`: quoted, with `\0 \t \r \n \" \\` and every character
// Rust deems unprintable or grapheme-extending as `\u{hex}`.

// Whether Rust's `Debug` writes a non-ASCII character as `\u{hex}`: the
// control, format, separator, surrogate and private-use characters, the
// noncharacters, and the combining marks of the blocks below. Rust's tables
// also escape the combining marks of other scripts and unassigned code
// points, which this (to stay small) writes as they are.
static bool rust_escapes(uint32_t c) {
  static const uint32_t ranges[][2] = {
      {0x80, 0x9f},     {0xa0, 0xa0},     {0xad, 0xad},     {0x300, 0x36f},   {0x600, 0x605},
      {0x61c, 0x61c},   {0x6dd, 0x6dd},   {0x70f, 0x70f},   {0x1680, 0x1680}, {0x180e, 0x180e},
      {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff}, {0x2000, 0x200f}, {0x2028, 0x202f}, {0x205f, 0x206f},
      {0x20d0, 0x20ff}, {0x3000, 0x3000}, {0xd800, 0xf8ff}, {0xfdd0, 0xfdef}, {0xfe00, 0xfe0f},
      {0xfe20, 0xfe2f}, {0xfeff, 0xfeff}, {0xfff0, 0xfffb}, {0xe0000, 0xe0fff}, {0xf0000, 0x10ffff},
  };
  if ((c & 0xfffe) == 0xfffe) return true;  // U+xFFFE and U+xFFFF of every plane
  for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
    if (c >= ranges[i][0] && c <= ranges[i][1]) return true;
  }
  return false;
}

// The length of the valid UTF-8 character at `p` (at most `n` bytes), or 0
// with `*invalid` set to the length of the maximal subpart to replace.
static size_t utf8_char(const uint8_t *p, size_t n, size_t *invalid, uint32_t *code) {
  uint8_t b = p[0];
  size_t len;
  uint8_t lo = 0x80, hi = 0xbf;
  if (b < 0x80) {
    *code = b;
    return 1;
  } else if (b >= 0xc2 && b <= 0xdf) {
    len = 2;
  } else if (b >= 0xe0 && b <= 0xef) {
    len = 3;
    if (b == 0xe0) lo = 0xa0;
    if (b == 0xed) hi = 0x9f;
  } else if (b >= 0xf0 && b <= 0xf4) {
    len = 4;
    if (b == 0xf0) lo = 0x90;
    if (b == 0xf4) hi = 0x8f;
  } else {
    *invalid = 1;
    return 0;
  }
  uint32_t c = b & (0x7f >> len);
  for (size_t i = 1; i < len; i++) {
    uint8_t next = i < n ? p[i] : 0;
    bool ok = i == 1 ? (next >= lo && next <= hi) : (next >= 0x80 && next <= 0xbf);
    if (i >= n || !ok) {
      *invalid = i;
      return 0;
    }
    c = (c << 6) | (next & 0x3f);
  }
  *code = c;
  return len;
}

static void buf_debug(buf_t *buf, const uint8_t *bytes, size_t len) {
  buf_byte(buf, '"');
  size_t i = 0;
  while (i < len) {
    size_t invalid = 0;
    uint32_t c = 0;
    size_t n = utf8_char(bytes + i, len - i, &invalid, &c);
    if (n == 0) {
      buf_str(buf, "\xef\xbf\xbd");  // U+FFFD
      i += invalid;
      continue;
    }
    switch (c) {
      case 0: buf_str(buf, "\\0"); break;
      case '\t': buf_str(buf, "\\t"); break;
      case '\r': buf_str(buf, "\\r"); break;
      case '\n': buf_str(buf, "\\n"); break;
      case '"': buf_str(buf, "\\\""); break;
      case '\\': buf_str(buf, "\\\\"); break;
      default:
        if (c < 0x20 || c == 0x7f || (c >= 0x80 && rust_escapes(c))) {
          buf_str(buf, "\\u{");
          buf_hex(buf, c);
          buf_byte(buf, '}');
        } else {
          buf_push(buf, bytes + i, n);
        }
    }
    i += n;
  }
  buf_byte(buf, '"');
}

// ---------------------------------------------------------------------------
// The executable, read as the Rust guest's `serde_json::from_slice` reads
//
//   #[derive(Deserialize)] #[serde(deny_unknown_fields)]
//   struct Counter { key: String, amount: u64 }
//
// following serde_json 1.0.154's parser step by step: an object with
// exactly the fields `key` (a string) and `amount` (an integer in
// 0..=2^64-1: no sign, fraction, exponent or leading zero), or the array
// `[key, amount]`; JSON whitespace around tokens; strings with JSON escapes
// (a surrogate pair in `\u` escapes is one character, a lone surrogate an
// error), no control characters, valid UTF-8; nothing after but
// whitespace. The errors are serde_json's, at the line and column it
// reports, with two exceptions: a float is named by its own digits
// (`1e2`, where serde_json writes `100.0`), and a float out of f64's range
// is a float here, not "number out of range".

typedef struct {
  buf_t key;
  uint64_t amount;
} counter_t;

typedef struct {
  const uint8_t *start;
  const uint8_t *p;
  const uint8_t *end;
  bool failed;
  size_t at;      // where serde_json reports the error (an offset)...
  size_t back;    // ...less this many bytes in its column
  buf_t message;  // what it says
} parser_t;

static const char EOF_VALUE[] = "EOF while parsing a value";
static const char EOF_STRING[] = "EOF while parsing a string";
static const char EOF_OBJECT[] = "EOF while parsing an object";
static const char EOF_LIST[] = "EOF while parsing a list";
static const char LONE_SURROGATE[] = "lone leading surrogate in hex escape";
static const char UNEXPECTED_END_OF_HEX[] = "unexpected end of hex escape";

// serde_json's `error`: the error is where the parse is. `message` is
// added to what `in->message` may already say.
static bool fail_here(parser_t *in, const char *message) {
  if (!in->failed) {
    in->failed = true;
    in->at = (size_t)(in->p - in->start);
    if (message != NULL) buf_str(&in->message, message);
  }
  return false;
}

// serde_json's `peek_error`: the error is at the next byte (its column
// counts it), or at the end.
static bool fail_next(parser_t *in, const char *message) {
  bool at_end = in->p == in->end;
  if (!at_end) in->p++;
  fail_here(in, message);
  if (!at_end) in->p--;
  return false;
}

static void skip_ws(parser_t *in) {
  while (in->p < in->end && (*in->p == ' ' || *in->p == '\n' || *in->p == '\t' || *in->p == '\r')) in->p++;
}

// The next byte after whitespace, or -1 at the end.
static int peek(parser_t *in) {
  skip_ws(in);
  return in->p < in->end ? *in->p : -1;
}

static bool is_digit(int b) { return b >= '0' && b <= '9'; }

static int hex_digit(uint8_t b) {
  if (b >= '0' && b <= '9') return b - '0';
  if (b >= 'a' && b <= 'f') return b - 'a' + 10;
  if (b >= 'A' && b <= 'F') return b - 'A' + 10;
  return -1;
}

static void push_utf8(buf_t *out, uint32_t c) {
  if (c < 0x80) {
    buf_byte(out, (uint8_t)c);
  } else if (c < 0x800) {
    buf_byte(out, (uint8_t)(0xc0 | c >> 6));
    buf_byte(out, (uint8_t)(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    buf_byte(out, (uint8_t)(0xe0 | c >> 12));
    buf_byte(out, (uint8_t)(0x80 | (c >> 6 & 0x3f)));
    buf_byte(out, (uint8_t)(0x80 | (c & 0x3f)));
  } else {
    buf_byte(out, (uint8_t)(0xf0 | c >> 18));
    buf_byte(out, (uint8_t)(0x80 | (c >> 12 & 0x3f)));
    buf_byte(out, (uint8_t)(0x80 | (c >> 6 & 0x3f)));
    buf_byte(out, (uint8_t)(0x80 | (c & 0x3f)));
  }
}

// The four hex digits of a `\u` escape (serde_json's `decode_hex_escape`).
static bool hex_escape(parser_t *in, uint32_t *value) {
  if (in->end - in->p < 4) {
    in->p = in->end;
    return fail_here(in, EOF_STRING);
  }
  bool ok = true;
  *value = 0;
  for (int i = 0; i < 4; i++) {
    int digit = hex_digit(in->p[i]);
    ok = ok && digit >= 0;
    *value = *value << 4 | (uint32_t)(digit & 0xf);
  }
  in->p += 4;
  return ok || fail_here(in, "invalid escape");
}

// After `\u`: one character, or a surrogate pair (`parse_unicode_escape`).
static bool unicode_escape(parser_t *in, buf_t *out) {
  uint32_t high, low;
  if (!hex_escape(in, &high)) return false;
  if (high >= 0xdc00 && high <= 0xdfff) return fail_here(in, LONE_SURROGATE);
  if (high < 0xd800 || high > 0xdbff) {
    push_utf8(out, high);
    return true;
  }
  for (const char *expected = "\\u"; *expected != 0; expected++) {
    if (in->p == in->end) return fail_here(in, EOF_STRING);
    if (*in->p++ != (uint8_t)*expected) return fail_here(in, UNEXPECTED_END_OF_HEX);
  }
  if (!hex_escape(in, &low)) return false;
  if (low < 0xdc00 || low > 0xdfff) return fail_here(in, LONE_SURROGATE);
  push_utf8(out, 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00));
  return true;
}

// A string's contents, its opening quote consumed, unescaped into `out`
// (`parse_str`): UTF-8 is checked at the closing quote, as serde_json does.
static bool parse_str(parser_t *in, buf_t *out) {
  for (;;) {
    if (in->p == in->end) return fail_here(in, EOF_STRING);
    uint8_t b = *in->p++;
    if (b == '"') break;
    if (b < 0x20) return fail_here(in, "control character (\\u0000-\\u001F) found while parsing a string");
    if (b != '\\') {
      buf_byte(out, b);
      continue;
    }
    if (in->p == in->end) return fail_here(in, EOF_STRING);
    uint8_t e = *in->p++;
    switch (e) {
      case '"': buf_byte(out, '"'); break;
      case '\\': buf_byte(out, '\\'); break;
      case '/': buf_byte(out, '/'); break;
      case 'b': buf_byte(out, '\b'); break;
      case 'f': buf_byte(out, '\f'); break;
      case 'n': buf_byte(out, '\n'); break;
      case 'r': buf_byte(out, '\r'); break;
      case 't': buf_byte(out, '\t'); break;
      case 'u':
        if (!unicode_escape(in, out)) return false;
        break;
      default: return fail_here(in, "invalid escape");
    }
  }
  for (size_t i = 0; i < out->len;) {
    size_t invalid = 0;
    uint32_t c;
    size_t n = utf8_char(out->ptr + i, out->len - i, &invalid, &c);
    if (n == 0) {
      // At the first invalid byte, counted back from the closing quote.
      in->back = out->len - i;
      return fail_here(in, "invalid unicode code point");
    }
    i += n;
  }
  return true;
}

// The rest of `null`, `true` or `false`, its first letter next.
static bool parse_ident(parser_t *in, const char *word) {
  in->p++;
  for (const char *expected = word + 1; *expected != 0; expected++) {
    if (in->p == in->end) return fail_here(in, EOF_VALUE);
    if (*in->p++ != (uint8_t)*expected) return fail_here(in, "expected ident");
  }
  return true;
}

typedef struct {
  enum { NUMBER_U64, NUMBER_I64, NUMBER_F64 } kind;
  uint64_t value;     // a U64's
  const uint8_t *text;
  size_t len;
} number_t;

// A number, after its `-` if `negative` (`parse_integer` and what follows):
// a fraction, an exponent or more digits than a u64 holds make a float; so
// do `-0` and a negative number below i64's range.
static bool parse_number(parser_t *in, bool negative, const uint8_t *text, number_t *number) {
  if (in->p == in->end) return fail_here(in, EOF_VALUE);
  uint8_t first = *in->p++;
  uint64_t significand = 0;
  bool is_float = false;
  if (first == '0') {
    if (in->p < in->end && is_digit(*in->p)) return fail_next(in, "invalid number");
  } else if (first >= '1' && first <= '9') {
    significand = (uint64_t)(first - '0');
    for (; in->p < in->end && is_digit(*in->p); in->p++) {
      uint64_t digit = (uint64_t)(*in->p - '0');
      if (significand > (UINT64_MAX - digit) / 10) is_float = true;
      if (!is_float) significand = significand * 10 + digit;
    }
  } else {
    return fail_here(in, "invalid number");
  }
  if (in->p < in->end && *in->p == '.') {
    in->p++;
    const uint8_t *digits = in->p;
    while (in->p < in->end && is_digit(*in->p)) in->p++;
    if (in->p == digits) return fail_next(in, in->p == in->end ? EOF_VALUE : "invalid number");
    is_float = true;
  }
  if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
    in->p++;
    if (in->p < in->end && (*in->p == '+' || *in->p == '-')) in->p++;
    if (in->p == in->end) return fail_here(in, EOF_VALUE);
    if (!is_digit(*in->p++)) return fail_here(in, "invalid number");
    while (in->p < in->end && is_digit(*in->p)) in->p++;
    is_float = true;
  }
  number->text = text;
  number->len = (size_t)(in->p - text);
  number->value = significand;
  if (is_float || (negative && (significand == 0 || significand > (uint64_t)INT64_MAX + 1))) {
    number->kind = NUMBER_F64;
  } else {
    number->kind = negative ? NUMBER_I64 : NUMBER_U64;
  }
  return true;
}

// A number as serde names what it did not expect.
static void describe_number(buf_t *out, const number_t *number) {
  if (number->kind == NUMBER_F64) {
    buf_str(out, "floating point `");
    buf_push(out, number->text, number->len);
    if (memchr(number->text, '.', number->len) == NULL && memchr(number->text, 'e', number->len) == NULL &&
        memchr(number->text, 'E', number->len) == NULL) {
      buf_str(out, ".0");
    }
  } else {
    buf_str(out, "integer `");
    buf_push(out, number->text, number->len);
  }
  buf_byte(out, '`');
}

// A value of the wrong type, next: read it to name it
// (`peek_invalid_type`).
static bool invalid_type(parser_t *in, const char *expected) {
  int b = in->p < in->end ? *in->p : 0;
  buf_t what = {0};
  bool ok = true;
  if (b == 'n') {
    ok = parse_ident(in, "null");
    buf_str(&what, "null");
  } else if (b == 't' || b == 'f') {
    ok = parse_ident(in, b == 't' ? "true" : "false");
    buf_str(&what, b == 't' ? "boolean `true`" : "boolean `false`");
  } else if (b == '-' || is_digit(b)) {
    const uint8_t *text = in->p;
    number_t number;
    if (b == '-') in->p++;
    ok = parse_number(in, b == '-', text, &number);
    if (ok) describe_number(&what, &number);
  } else if (b == '"') {
    buf_t string = {0};
    in->p++;
    ok = parse_str(in, &string);
    if (ok) {
      buf_str(&what, "string ");
      buf_debug(&what, string.ptr, string.len);
    }
    free(string.ptr);
  } else if (b == '[') {
    buf_str(&what, "sequence");
  } else if (b == '{') {
    buf_str(&what, "map");
  } else {
    return fail_next(in, "expected value");
  }
  if (ok) {
    buf_str(&in->message, "invalid type: ");
    buf_push(&in->message, what.ptr, what.len);
    buf_str(&in->message, ", expected ");
    fail_here(in, expected);
  }
  free(what.ptr);
  return false;
}

// `key`'s value: a string (`deserialize_string`).
static bool parse_key(parser_t *in, buf_t *key) {
  int b = peek(in);
  if (b < 0) return fail_next(in, EOF_VALUE);
  if (b != '"') return invalid_type(in, "a string");
  in->p++;
  return parse_str(in, key);
}

// `amount`'s value: a u64 (`deserialize_u64`).
static bool parse_amount(parser_t *in, uint64_t *amount) {
  int b = peek(in);
  if (b < 0) return fail_next(in, EOF_VALUE);
  if (b != '-' && !is_digit(b)) return invalid_type(in, "u64");
  const uint8_t *text = in->p;
  number_t number;
  if (b == '-') in->p++;
  if (!parse_number(in, b == '-', text, &number)) return false;
  if (number.kind == NUMBER_U64) {
    *amount = number.value;
    return true;
  }
  buf_str(&in->message, number.kind == NUMBER_I64 ? "invalid value: " : "invalid type: ");
  describe_number(&in->message, &number);
  return fail_here(in, ", expected u64");
}

// An error about the fields (unknown, twice, missing): serde_json places it
// after `end_map`, which skips whitespace and a closing `}`.
static bool field_error(parser_t *in, const char *message, const uint8_t *field, size_t len) {
  buf_str(&in->message, message);
  if (field != NULL) {
    buf_push(&in->message, field, len);
    buf_str(&in->message, "`, expected `key` or `amount`");
  }
  if (peek(in) == '}') in->p++;
  return fail_here(in, NULL);
}

// An object, `{` next (`visit_map`, `MapAccess`, `end_map`).
static bool parse_object(parser_t *in, counter_t *counter) {
  bool first = true, have_key = false, have_amount = false;
  in->p++;
  for (;;) {
    int b = peek(in);
    if (b < 0) return fail_next(in, EOF_OBJECT);
    if (b == '}') break;
    if (first) {
      first = false;
      if (b != '"') return fail_next(in, "key must be a string");
    } else if (b == ',') {
      in->p++;
      b = peek(in);
      if (b != '"') {
        return fail_next(in, b == '}' ? "trailing comma" : b < 0 ? EOF_VALUE : "key must be a string");
      }
    } else {
      return fail_next(in, "expected `,` or `}`");
    }
    buf_t name = {0};
    in->p++;
    bool ok = parse_str(in, &name);
    bool is_key = ok && name.len == 3 && memcmp(name.ptr, "key", 3) == 0;
    bool is_amount = ok && name.len == 6 && memcmp(name.ptr, "amount", 6) == 0;
    if (ok && !is_key && !is_amount) field_error(in, "unknown field `", name.ptr, name.len);
    free(name.ptr);
    if (in->failed) return false;
    if (is_key ? have_key : have_amount) {
      return field_error(in, is_key ? "duplicate field `key`" : "duplicate field `amount`", NULL, 0);
    }
    b = peek(in);
    if (b != ':') return fail_next(in, b < 0 ? EOF_OBJECT : "expected `:`");
    in->p++;
    if (is_key ? !parse_key(in, &counter->key) : !parse_amount(in, &counter->amount)) return false;
    *(is_key ? &have_key : &have_amount) = true;
  }
  if (!have_key) return field_error(in, "missing field `key`", NULL, 0);
  if (!have_amount) return field_error(in, "missing field `amount`", NULL, 0);
  in->p++;
  return true;
}

// The array form, `[` next (`visit_seq`, `SeqAccess`, `end_seq`).
static bool parse_array(parser_t *in, counter_t *counter) {
  static const char *const too_short[] = {
      "invalid length 0, expected struct Counter with 2 elements",
      "invalid length 1, expected struct Counter with 2 elements",
  };
  in->p++;
  for (int element = 0; element < 2; element++) {
    int b = peek(in);
    if (b < 0) return fail_next(in, EOF_LIST);
    if (b == ']') {
      // Reported after `end_seq` took the `]`.
      in->p++;
      return fail_here(in, too_short[element]);
    }
    if (element > 0) {
      if (b != ',') return fail_next(in, "expected `,` or `]`");
      in->p++;
      b = peek(in);
      if (b == ']' || b < 0) return fail_next(in, b < 0 ? EOF_VALUE : "trailing comma");
    }
    if (element == 0 ? !parse_key(in, &counter->key) : !parse_amount(in, &counter->amount)) return false;
  }
  int b = peek(in);
  if (b == ']') {
    in->p++;
    return true;
  }
  if (b == ',') {
    in->p++;
    return fail_next(in, peek(in) == ']' ? "trailing comma" : "trailing characters");
  }
  return fail_next(in, b < 0 ? EOF_LIST : "trailing characters");
}

// Parses the executable into `counter`, or writes the Rust guest's error
// message into `err`: `bad counter executable: <what> at line L column C`.
static bool parse_counter(const executor_list_u8_t *executable, counter_t *counter, buf_t *err) {
  parser_t in = {executable->ptr, executable->ptr, executable->ptr + executable->len, false, 0, 0, {0}};
  *counter = (counter_t){{0}, 0};
  int first = peek(&in);
  bool ok = first == '{'   ? parse_object(&in, counter)
            : first == '[' ? parse_array(&in, counter)
            : first < 0    ? fail_next(&in, EOF_VALUE)
                           : invalid_type(&in, "struct Counter");
  if (ok && peek(&in) >= 0) ok = fail_next(&in, "trailing characters");
  if (ok) return true;
  free(counter->key.ptr);
  counter->key = (buf_t){0};
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < in.at; i++) {
    if (in.start[i] == '\n') {
      line++;
      line_start = i + 1;
    }
  }
  size_t column = in.at - line_start;
  buf_str(err, "bad counter executable: ");
  buf_push(err, in.message.ptr, in.message.len);
  buf_str(err, " at line ");
  buf_u64(err, line);
  buf_str(err, " column ");
  buf_u64(err, column > in.back ? column - in.back : 0);
  free(in.message.ptr);
  return false;
}

// ---------------------------------------------------------------------------
// A stored value (`example_decimal::decode`): absent is 0, otherwise one or
// more ASCII digits naming a u64 (leading zeros allowed).

static bool decode(const executor_option_list_u8_t *datum, uint64_t *value, buf_t *err) {
  *value = 0;
  if (!datum->is_some) return true;
  const executor_list_u8_t *bytes = &datum->val;
  bool ok = bytes->len > 0;
  for (size_t i = 0; ok && i < bytes->len; i++) {
    uint8_t b = bytes->ptr[i];
    ok = b >= '0' && b <= '9' && *value <= (UINT64_MAX - (uint64_t)(b - '0')) / 10;
    if (ok) *value = *value * 10 + (uint64_t)(b - '0');
  }
  if (ok) return true;
  buf_str(err, "value ");
  buf_debug(err, bytes->ptr, bytes->len);
  buf_str(err, " is not a decimal u64");
  return false;
}

// ---------------------------------------------------------------------------
// The three exports. Arguments are ours to free; what is returned the
// bindings' `cabi_post_*` functions free, so it is all on the heap.

static const char START[] = "start";
static const char READING[] = "reading";
static const char DONE[] = "done";

static void set_err(executor_string_t *err, buf_t *message) {
  *err = (executor_string_t){message->ptr, message->len};
}

bool exports_executor_starting_state(executor_list_u8_t *executable, executor_list_u8_t *ret,
                                     executor_string_t *err) {
  counter_t counter;
  buf_t message = {0};
  bool ok = parse_counter(executable, &counter, &message);
  executor_list_u8_free(executable);
  if (!ok) {
    set_err(err, &message);
    return false;
  }
  free(counter.key.ptr);
  *ret = list_of(START, strlen(START));
  return true;
}

bool exports_executor_execute_step(executor_list_u8_t *executable, executor_list_u8_t *state,
                                   executor_input_t *maybe_input, executor_step_t *ret, executor_string_t *err) {
  counter_t counter;
  buf_t message = {0};
  bool ok = parse_counter(executable, &counter, &message);
  if (!ok) {
    // Nothing else to say.
  } else if (maybe_input == NULL) {
    if (list_is(state, START)) {
      executor_request_t *read = malloc(sizeof *read);
      if (read == NULL) abort();
      read->tag = EXECUTOR_REQUEST_READ;
      read->val.read = list_of(counter.key.ptr, counter.key.len);
      *ret = (executor_step_t){list_of(READING, strlen(READING)), {read, 1}};
    } else {
      buf_str(&message, "counter already started");
      ok = false;
    }
  } else if ((list_is(state, START) || list_is(state, READING)) && maybe_input->key.len == counter.key.len &&
             memcmp(maybe_input->key.ptr, counter.key.ptr, counter.key.len) == 0) {
    // Declared eager, the value is the first step's input.
    uint64_t value;
    ok = decode(&maybe_input->datum, &value, &message);
    if (ok && value > UINT64_MAX - counter.amount) {
      buf_str(&message, "counter ");
      buf_push(&message, counter.key.ptr, counter.key.len);
      buf_str(&message, " overflows");
      ok = false;
    }
    if (ok) {
      buf_t encoded = {0};
      buf_u64(&encoded, value + counter.amount);
      executor_request_t *write = malloc(sizeof *write);
      if (write == NULL) abort();
      write->tag = EXECUTOR_REQUEST_WRITE;
      write->val.write.key = list_of(counter.key.ptr, counter.key.len);
      write->val.write.datum = (executor_list_u8_t){encoded.ptr, encoded.len};
      *ret = (executor_step_t){list_of(DONE, strlen(DONE)), {write, 1}};
    }
  } else {
    buf_str(&message, "unexpected read of ");
    buf_debug(&message, maybe_input->key.ptr, maybe_input->key.len);
    ok = false;
  }
  free(counter.key.ptr);
  executor_list_u8_free(executable);
  executor_list_u8_free(state);
  if (maybe_input != NULL) executor_input_free(maybe_input);
  if (!ok) set_err(err, &message);
  return ok;
}

bool exports_executor_halted(executor_list_u8_t *state) {
  bool done = list_is(state, DONE);
  executor_list_u8_free(state);
  return done;
}
