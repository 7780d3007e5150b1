//! A small reader of protobuf text format, enough for Triton's `config.pbtxt`:
//! fields `name: value` or `name { ... }`, lists `[a, b]`, strings with C escapes,
//! numbers, enum identifiers, `#` comments. It knows no schema: the caller
//! (`config.rs`) picks the fields it understands. Written by hand because the
//! config is tiny and a text-format dependency would pull in reflection.

use thiserror::Error;

#[derive(Debug, Error)]
#[error("config.pbtxt line {line}: {msg}")]
pub struct PbtxtError {
    pub line: usize,
    pub msg: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    /// a number or an enum identifier, as written
    Word(String),
    Msg(Vec<(String, Value)>),
}

impl Value {
    pub fn as_msg(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Msg(f) => Some(f),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Punct(char),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, PbtxtError> {
    let mut out = Vec::new();
    let mut line = 1;
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            c if c.is_ascii_whitespace() => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' | b'}' | b'[' | b']' | b':' | b',' | b';' | b'<' | b'>' => {
                out.push((Tok::Punct(c as char), line));
                i += 1;
            }
            b'"' | b'\'' => {
                let quote = c;
                let start_line = line;
                i += 1;
                let mut s: Vec<u8> = Vec::new();
                loop {
                    let Some(&c) = b.get(i) else {
                        return Err(PbtxtError { line: start_line, msg: "unterminated string".into() });
                    };
                    i += 1;
                    if c == quote {
                        break;
                    }
                    if c == b'\n' {
                        return Err(PbtxtError { line, msg: "newline inside a string".into() });
                    }
                    if c != b'\\' {
                        s.push(c);
                        continue;
                    }
                    let Some(&e) = b.get(i) else {
                        return Err(PbtxtError { line, msg: "unterminated escape".into() });
                    };
                    i += 1;
                    match e {
                        b'n' => s.push(b'\n'),
                        b't' => s.push(b'\t'),
                        b'r' => s.push(b'\r'),
                        b'a' => s.push(7),
                        b'b' => s.push(8),
                        b'f' => s.push(12),
                        b'v' => s.push(11),
                        b'\\' | b'\'' | b'"' | b'?' => s.push(e),
                        b'0'..=b'7' => {
                            // up to three octal digits
                            let mut v = (e - b'0') as u32;
                            for _ in 0..2 {
                                match b.get(i) {
                                    Some(&d @ b'0'..=b'7') => {
                                        v = v * 8 + (d - b'0') as u32;
                                        i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            s.push((v & 0xff) as u8);
                        }
                        b'x' => {
                            let mut v = 0u32;
                            let mut n = 0;
                            while n < 2 {
                                match b.get(i).and_then(|d| (*d as char).to_digit(16)) {
                                    Some(d) => {
                                        v = v * 16 + d;
                                        i += 1;
                                        n += 1;
                                    }
                                    None => break,
                                }
                            }
                            if n == 0 {
                                return Err(PbtxtError { line, msg: "\\x without hex digits".into() });
                            }
                            s.push(v as u8);
                        }
                        other => return Err(PbtxtError { line, msg: format!("unknown escape \\{}", other as char) }),
                    }
                }
                let s = String::from_utf8(s).map_err(|_| PbtxtError { line, msg: "string is not UTF-8".into() })?;
                // Adjacent string literals concatenate, as in protobuf text format. Two
                // string tokens in a row can only be that: a field name or a comma
                // always separates values.
                if let Some((Tok::Str(prev), _)) = out.last_mut() {
                    prev.push_str(&s);
                } else {
                    out.push((Tok::Str(s), line));
                }
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'+' || c == b'.' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'+' | b'.')) {
                    i += 1;
                }
                out.push((Tok::Ident(src[start..i].to_string()), line));
            }
            other => {
                return Err(PbtxtError { line, msg: format!("unexpected character {:?}", other as char) });
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.toks.get(self.pos).or(self.toks.last()).map(|t| t.1).unwrap_or(1)
    }
    fn err<T>(&self, msg: impl Into<String>) -> Result<T, PbtxtError> {
        Err(PbtxtError { line: self.line(), msg: msg.into() })
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Fields until `end` (a closing brace) or the end of input.
    fn fields(&mut self, end: Option<char>, depth: usize) -> Result<Vec<(String, Value)>, PbtxtError> {
        if depth > 32 {
            return self.err("nesting too deep");
        }
        let mut out = Vec::new();
        loop {
            match (self.peek(), end) {
                (None, None) => return Ok(out),
                (None, Some(c)) => return self.err(format!("missing '{c}'")),
                (Some(Tok::Punct(p)), Some(c)) if *p == c => {
                    self.pos += 1;
                    return Ok(out);
                }
                _ => {}
            }
            let name = match self.peek() {
                Some(Tok::Ident(n)) => n.clone(),
                Some(t) => return self.err(format!("expected a field name, found {t:?}")),
                None => unreachable!("handled above"),
            };
            self.pos += 1;
            let colon = self.eat(':');
            if self.eat('[') {
                // a list: `name: [v, v]` or `name [ {..}, {..} ]`
                if !self.eat(']') {
                    loop {
                        let v = self.value(colon, depth)?;
                        out.push((name.clone(), v));
                        if self.eat(',') {
                            continue;
                        }
                        if self.eat(']') {
                            break;
                        }
                        return self.err(format!("expected ',' or ']' in the list of '{name}'"));
                    }
                }
            } else {
                let v = self.value(colon, depth)?;
                out.push((name, v));
            }
            // optional separators between fields
            let _ = self.eat(',') || self.eat(';');
        }
    }

    fn value(&mut self, _colon: bool, depth: usize) -> Result<Value, PbtxtError> {
        if self.eat('{') {
            return Ok(Value::Msg(self.fields(Some('}'), depth + 1)?));
        }
        if self.eat('<') {
            return Ok(Value::Msg(self.fields(Some('>'), depth + 1)?));
        }
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Value::Str(s))
            }
            Some(Tok::Ident(w)) => {
                self.pos += 1;
                Ok(Value::Word(w))
            }
            other => self.err(format!("expected a value, found {other:?}")),
        }
    }
}

/// Parses a whole text-format message.
pub fn parse(src: &str) -> Result<Vec<(String, Value)>, PbtxtError> {
    let toks = lex(src)?;
    Parser { toks, pos: 0 }.fields(None, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triton_config_shapes() {
        let src = r#"
name: "m"  # comment
max_batch_size: 0
input [
  { name: "A" data_type: TYPE_STRING dims: [ -1 ] },
  { name: "B" data_type: TYPE_STRING dims: [ 1 ] optional: true }
]
parameters: { key: "k" value: { string_value: "{\"a\": \"b\\n\"}" } }
parameters { key: "x" value { string_value: 'y' "z" } }
"#;
        let f = parse(src).unwrap();
        assert_eq!(f[0], ("name".into(), Value::Str("m".into())));
        assert_eq!(f.iter().filter(|(n, _)| n == "input").count(), 2);
        let p: Vec<_> = f.iter().filter(|(n, _)| n == "parameters").collect();
        assert_eq!(p.len(), 2);
        let v = p[0].1.as_msg().unwrap();
        assert_eq!(v[1].1.as_msg().unwrap()[0].1, Value::Str("{\"a\": \"b\\n\"}".into()));
        assert_eq!(p[1].1.as_msg().unwrap()[1].1.as_msg().unwrap()[0].1, Value::Str("yz".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("name: \"m\"\ninput [ { name: \"a\" ").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(parse("name: \"unterminated").is_err());
        assert!(parse("x: @").is_err());
        assert!(parse(&"a { ".repeat(100)).is_err());
    }
}
