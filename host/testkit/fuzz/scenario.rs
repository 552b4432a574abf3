//! Scenario JSON into `Scenario::from_json`: the example files mutated
//! byte by byte and token by token (with invalid UTF-8 read as text, as a
//! lossy reader would), random scenarios built field by field with values
//! of every type (huge and negative numbers, hex edge cases, duplicate
//! keys, unknown fields, deep nesting, lone surrogates), and random text.
//! Invariant: no panic; an error names a non-empty path and its message
//! starts with it; a scenario that parses converts to a workload with as
//! many transactions and a shard count in range.

use std::path::Path;

use executor_testkit::Scenario;
use executor_testkit::harness::MAX_SHARDS;

use super::{Fuzzer, Rng, Stats};

pub struct ScenarioFuzzer {
    /// The example files, and a few transactions of the large one.
    seeds: Vec<String>,
    last: Vec<u8>,
}

const DICTIONARY: &[&str] = &[
    "\"hex\"",
    "{\"hex\":\"zz\"}",
    "{\"hex\":\"abc\"}",
    "{\"hex\":\"\"}",
    "{\"hex\":\"0A1b\"}",
    "{\"hex\":1}",
    "{\"hex\":\"00\",\"hex\":\"01\"}",
    "{\"hex\":\"00\",\"x\":1}",
    "\"hex:\"",
    "\"hex:0g\"",
    "\"hex:6869\"",
    "1e400",
    "-1",
    "-0",
    "0.5",
    "18446744073709551615",
    "18446744073709551616",
    "340282366920938463463374607431768211456",
    "1e-400",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\ud83d\\ude00\"",
    "\"\\u0000\"",
    "\"\\x\"",
    "\"shards\"",
    "\"transactions\"",
    "\"initial_state\"",
    "\"options\"",
    "\"executable\"",
    "\"eager_read_keys\"",
    "\"lazy_read_keys\"",
    "\"will_write_keys\"",
    "\"may_write_keys\"",
    "\"gas_limit\"",
    "\"deadline\"",
    "\"linger\"",
    "{\"secs\":18446744073709551615,\"nanos\":4294967295}",
    "{\"secs\":1,\"nanos\":999999999}",
    "\"write_mode\"",
    "\"access_mode\"",
    "\"atomic\"",
    "\"streaming\"",
    "\"lenient\"",
    "\"strict\"",
    "\"shards\":0,",
    "\"shards\":1025,",
    "\"shards\":1,\"shards\":2,",
    ",",
    ":",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "\\",
    "\u{feff}",
    "\u{0}",
];

impl ScenarioFuzzer {
    pub fn new() -> Result<Self, String> {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let read = |name: &str| {
            std::fs::read_to_string(examples.join(name)).map_err(|e| format!("reading examples/{name}: {e}"))
        };
        let transfers = read("transfers.json")?;
        let nock = read("nock.json")?;
        // A few transactions of the large example, so most inputs are small.
        let mut small: serde_json::Value = serde_json::from_str(&transfers).map_err(|e| e.to_string())?;
        if let Some(txs) = small.get_mut("transactions").and_then(|t| t.as_array_mut()) {
            txs.truncate(3);
        }
        let small = serde_json::to_string_pretty(&small).map_err(|e| e.to_string())?;
        let compact =
            serde_json::to_string(&serde_json::from_str::<serde_json::Value>(&nock).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        Ok(Self { seeds: vec![small, nock, compact, transfers], last: Vec::new() })
    }

    fn seed_text(&self, rng: &mut Rng) -> &str {
        // The full 300-transaction example now and then: it is 60 KB.
        let count = if rng.chance(1) { self.seeds.len() } else { self.seeds.len() - 1 };
        self.seeds.get(rng.index(count)).map_or("", String::as_str)
    }
}

impl Fuzzer for ScenarioFuzzer {
    fn case(&mut self, seed: u64, stats: &mut Stats) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let bytes = match rng.below(10) {
            0..=3 => {
                let mut bytes = self.seed_text(&mut rng).as_bytes().to_vec();
                for _ in 0..1 + rng.below(8) {
                    mutate_bytes(&mut rng, &mut bytes);
                }
                bytes
            }
            4..=5 => {
                let text = self.seed_text(&mut rng).to_string();
                mutate_tokens(&mut rng, &text).into_bytes()
            }
            6..=8 => {
                let mut bytes = generate(&mut rng).into_bytes();
                if rng.chance(30) {
                    mutate_bytes(&mut rng, &mut bytes);
                }
                bytes
            }
            _ => match rng.below(3) {
                0 => {
                    let n = rng.index(200);
                    rng.bytes(n)
                }
                1 => nested(&mut rng).into_bytes(),
                _ => {
                    let mut text = String::new();
                    for _ in 0..rng.below(30) {
                        text.push_str(rng.pick(DICTIONARY).copied().unwrap_or(""));
                    }
                    text.into_bytes()
                }
            },
        };
        let result = check(&bytes, stats);
        self.last = bytes;
        result
    }

    fn last_input(&self) -> Option<&[u8]> {
        Some(&self.last)
    }

    fn corpus_entry(&mut self, bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
        check(bytes, stats)
    }
}

/// Field names, for naming an error's path by its shape.
const KNOWN: &[&str] = &[
    "scenario",
    "shards",
    "initial_state",
    "options",
    "transactions",
    "executable",
    "lazy_read_keys",
    "eager_read_keys",
    "will_write_keys",
    "may_write_keys",
    "gas_limit",
    "deadline",
    "linger",
    "write_mode",
    "access_mode",
    "secs",
    "nanos",
    "hex",
    "?",
];

/// The invariant on one input, read as text the way a lossy reader would.
pub fn check(bytes: &[u8], stats: &mut Stats) -> Result<(), String> {
    stats.inputs += 1;
    let text = String::from_utf8_lossy(bytes);
    match Scenario::from_json(&text) {
        Ok(scenario) => {
            if scenario.shards == 0 || scenario.shards > MAX_SHARDS {
                return Err(format!("accepted {} shards", scenario.shards));
            }
            let workload = scenario.workload();
            if workload.transactions.len() != scenario.transactions.len() || workload.shards != scenario.shards {
                return Err("the workload differs from the scenario".into());
            }
            stats.outcome("scenario:ok");
        }
        Err(error) => {
            if error.path.is_empty() {
                return Err(format!("an error without a path: {error}"));
            }
            if !error.to_string().starts_with(&error.path) {
                return Err(format!("the message does not start with the path {:?}: {error}", error.path));
            }
            // The path's shape, indices elided, is the outcome.
            let shape: Vec<String> = error
                .path
                .split('.')
                .map(|segment| {
                    let name = segment.split('[').next().unwrap_or("");
                    let indexed = if segment.contains('[') { "[]" } else { "" };
                    match KNOWN.iter().find(|k| **k == name) {
                        Some(known) => format!("{known}{indexed}"),
                        None => format!("<other>{indexed}"),
                    }
                })
                .collect();
            let shape = shape.iter().take(4).cloned().collect::<Vec<_>>().join(".");
            stats.outcome(format!("scenario:err:{shape}"));
        }
    }
    Ok(())
}

fn mutate_bytes(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    let at = rng.index(len + 1);
    match rng.below(8) {
        0 if len > 0 => {
            if let Some(b) = bytes.get_mut(at.min(len - 1)) {
                *b ^= 1 << rng.below(8);
            }
        }
        1 if len > 0 => {
            let value = *rng.pick(b"{}[]\",:0123456789eE+-.\\ntfu\xff\xc0\x80").unwrap_or(&b'x');
            if let Some(b) = bytes.get_mut(at.min(len - 1)) {
                *b = value;
            }
        }
        2 => {
            let end = (at + 1 + rng.index(16)).min(len);
            bytes.drain(at.min(end)..end);
        }
        3 if len > 0 => {
            let from = rng.index(len);
            let end = (from + 1 + rng.index(64)).min(len);
            let chunk = bytes[from..end].to_vec();
            bytes.splice(at..at, chunk);
        }
        4 => bytes.truncate(at),
        5 => {
            let token = rng.pick(DICTIONARY).copied().unwrap_or("");
            bytes.splice(at..at, token.bytes());
        }
        6 => {
            let random = {
                let n = 1 + rng.index(4);
                rng.bytes(n)
            };
            bytes.splice(at..at, random);
        }
        _ => {
            // Invalid UTF-8 sequences: lone continuation, overlong, truncated.
            let seq: &[u8] =
                rng.pick(&[&b"\xff"[..], b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\x80"]).copied().unwrap_or(b"");
            bytes.splice(at..at, seq.iter().copied());
        }
    }
}

/// A rough JSON tokenizer: strings, numbers and literals, punctuation.
fn tokens(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
            }
            b'{' | b'}' | b'[' | b']' | b',' | b':' => i += 1,
            c if c.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
            _ => {
                while i < bytes.len() && !b"{}[],:\" \n\t\r".contains(&bytes[i]) {
                    i += 1;
                }
            }
        }
        // Token boundaries are ASCII, so always char boundaries.
        if let Some(token) = text.get(start..i) {
            out.push(token);
        } else {
            break;
        }
    }
    out
}

fn mutate_tokens(rng: &mut Rng, text: &str) -> String {
    let mut toks: Vec<String> = tokens(text).into_iter().map(str::to_string).collect();
    for _ in 0..1 + rng.below(6) {
        if toks.is_empty() {
            break;
        }
        let i = rng.index(toks.len());
        match rng.below(5) {
            0 => toks[i] = rng.pick(DICTIONARY).copied().unwrap_or("").to_string(),
            1 => {
                let j = rng.index(toks.len());
                toks.swap(i, j);
            }
            2 => {
                toks.remove(i);
            }
            3 => {
                // Repeat a run of tokens (duplicate keys, fields, elements).
                let end = (i + 1 + rng.index(12)).min(toks.len());
                let run: Vec<String> = toks[i..end].to_vec();
                toks.splice(i..i, run);
            }
            _ => {
                let j = rng.index(toks.len());
                toks[i] = toks[j].clone();
            }
        }
    }
    toks.concat()
}

fn nested(rng: &mut Rng) -> String {
    let depth = 1 + rng.index(3_000);
    let (open, close) = if rng.chance(50) { ("[", "]") } else { ("{\"a\":", "}") };
    let inner = format!("{}0{}", open.repeat(depth), close.repeat(depth));
    match rng.below(3) {
        0 => inner,
        1 => format!("{{\"transactions\":[{{\"executable\":{inner}}}]}}"),
        _ => format!("{{\"shards\":1,\"options\":{inner},\"transactions\":[]}}"),
    }
}

thread_local! {
    /// Percent of values [`generate`] draws from the edge cases (set per
    /// case, so a case stays a function of its seed).
    static EDGE: std::cell::Cell<u64> = const { std::cell::Cell::new(30) };
}

fn edge(rng: &mut Rng) -> bool {
    let percent = EDGE.with(std::cell::Cell::get);
    rng.chance(percent)
}

/// A random scenario, field by field, values of the right type or not.
fn generate(rng: &mut Rng) -> String {
    // Half the scenarios are mostly well formed.
    EDGE.with(|e| e.set(if rng.chance(50) { 2 } else { 30 }));
    let mut fields: Vec<String> = Vec::new();
    if rng.chance(70) {
        fields.push(format!("\"shards\":{}", number(rng, &["1", "3", "1024"])));
    }
    if rng.chance(70) {
        let entries: Vec<String> =
            (0..rng.below(5)).map(|_| format!("{}:{}", key_text(rng), bytes_value(rng))).collect();
        fields.push(format!("\"initial_state\":{}", object_or(rng, entries)));
    }
    if rng.chance(50) {
        let mut entries = Vec::new();
        if rng.chance(50) {
            entries.push(format!("\"gas_limit\":{}", number(rng, &["0", "1000000", "18446744073709551615"])));
        }
        for name in ["deadline", "linger"] {
            if rng.chance(40) {
                let value = match if edge(rng) { rng.below(4) } else { 0 } {
                    0 => format!(
                        "{{\"secs\":{},\"nanos\":{}}}",
                        number(rng, &["0", "30"]),
                        number(rng, &["0", "999999999", "1000000000"])
                    ),
                    1 => "{\"secs\":1}".to_string(),
                    2 => number(rng, &["1", "\"1s\""]),
                    _ => "[1,2]".to_string(),
                };
                entries.push(format!("\"{name}\":{value}"));
            }
        }
        if rng.chance(50) {
            let modes = ["\"streaming\"", "\"atomic\"", "\"Atomic\"", "1", "null", "\"\""];
            let mode = modes[if edge(rng) { rng.index(modes.len()) } else { rng.index(2) }];
            entries.push(format!("\"write_mode\":{mode}"));
        }
        if rng.chance(50) {
            let modes = ["\"strict\"", "\"lenient\"", "\"loose\"", "[]"];
            let mode = modes[if edge(rng) { rng.index(modes.len()) } else { rng.index(2) }];
            entries.push(format!("\"access_mode\":{mode}"));
        }
        if edge(rng) && rng.chance(30) {
            entries.push("\"unknown\":1".to_string());
        }
        fields.push(format!("\"options\":{}", object_or(rng, entries)));
    }
    if rng.chance(90) {
        let txs: Vec<String> = (0..rng.below(6)).map(|_| transaction(rng)).collect();
        let value = if !edge(rng) || rng.chance(80) { format!("[{}]", txs.join(",")) } else { "{}".to_string() };
        fields.push(format!("\"transactions\":{value}"));
    }
    if edge(rng) && rng.chance(15) {
        fields.push("\"comment\":\"unknown field\"".to_string());
    }
    if edge(rng) && rng.chance(15) && !fields.is_empty() {
        let again = fields[rng.index(fields.len())].clone();
        fields.push(again);
    }
    // Shuffle.
    for i in (1..fields.len()).rev() {
        let j = rng.index(i + 1);
        fields.swap(i, j);
    }
    let ws = if rng.chance(50) { "\n " } else { "" };
    format!("{{{ws}{}{ws}}}", fields.join(&format!(",{ws}")))
}

fn transaction(rng: &mut Rng) -> String {
    let mut fields = Vec::new();
    if !edge(rng) || rng.chance(70) {
        let executable = match if edge(rng) { rng.below(6) } else { rng.below(4) } {
            0 => "{\"from\":\"a\",\"to\":\"b\",\"amount\":1}".to_string(),
            1 => string(rng),
            2 => bytes_value(rng),
            3 => number(rng, &["0", "1"]),
            4 => nested(rng),
            _ => "null".to_string(),
        };
        fields.push(format!("\"executable\":{executable}"));
    }
    for set in ["lazy_read_keys", "eager_read_keys", "will_write_keys", "may_write_keys"] {
        if rng.chance(40) {
            let keys: Vec<String> = (0..rng.below(4)).map(|_| bytes_value(rng)).collect();
            let value = if !edge(rng) || rng.chance(80) { format!("[{}]", keys.join(",")) } else { string(rng) };
            fields.push(format!("\"{set}\":{value}"));
        }
    }
    if edge(rng) && rng.chance(15) {
        fields.push("\"eager_read_key\":[]".to_string());
    }
    format!("{{{}}}", fields.join(","))
}

fn object_or(rng: &mut Rng, entries: Vec<String>) -> String {
    match if edge(rng) { rng.below(20) } else { 2 } {
        0 => "[]".to_string(),
        1 => "null".to_string(),
        _ => format!("{{{}}}", entries.join(",")),
    }
}

fn number(rng: &mut Rng, good: &[&str]) -> String {
    let edges = [
        "-1",
        "1.5",
        "1e3",
        "1e400",
        "-0",
        "18446744073709551616",
        "99999999999999999999999999999",
        "0x10",
        "01",
        "1025",
        "0",
        "\"2\"",
        "null",
        "NaN",
    ];
    if !edge(rng) {
        rng.pick(good).copied().unwrap_or("0").to_string()
    } else {
        rng.pick(&edges).copied().unwrap_or("0").to_string()
    }
}

fn string(rng: &mut Rng) -> String {
    let body = match if edge(rng) { rng.below(8) } else { 7 } {
        0 => String::new(),
        1 => "\\ud800".to_string(),
        2 => "\\ud83d\\ude00".to_string(),
        3 => "\\u0000".to_string(),
        4 => "a\\\"b\\\\c".to_string(),
        5 => "ünïcödé ✓".to_string(),
        6 => "x".repeat(rng.index(5_000)),
        _ => format!("k{}", rng.below(10)),
    };
    format!("\"{body}\"")
}

fn hex_digits(rng: &mut Rng) -> String {
    match if edge(rng) { rng.below(6) } else { 5 } {
        0 => String::new(),
        1 => "abc".to_string(),
        2 => "zz".to_string(),
        3 => "ABCDEF".to_string(),
        4 => "0".repeat(2 * rng.index(2_000)),
        _ => (0..rng.below(8)).map(|_| format!("{:02x}", rng.below(256))).collect(),
    }
}

/// A byte-string value: a string, a hex object (good or bad), or junk.
fn bytes_value(rng: &mut Rng) -> String {
    match if edge(rng) { rng.below(8) } else { rng.below(5) } {
        0..=2 => string(rng),
        3 | 4 => format!("{{\"hex\":\"{}\"}}", hex_digits(rng)),
        5 => format!("{{\"hex\":\"{}\",\"extra\":1}}", hex_digits(rng)),
        6 => number(rng, &["7"]),
        _ => "[\"a\"]".to_string(),
    }
}

/// An object key of `initial_state`: text, `hex:` and digits, or a
/// duplicate-prone short name.
fn key_text(rng: &mut Rng) -> String {
    match if edge(rng) { rng.below(4) } else { 2 } {
        0 => format!("\"hex:{}\"", hex_digits(rng)),
        1 => "\"a\"".to_string(),
        _ => string(rng),
    }
}
