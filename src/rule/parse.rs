//! A rule's text into its tree: a lexer, then recursive descent in CEL's
//! precedence (`||`, then `&&`, then relations and `in`, then `!` and `-`,
//! then member access, indexing and calls).

use http::HeaderName;
use serde_json::{Map, Number, Value};

use super::{Expr, Field, Method, Op, MAX_DEPTH};
use crate::claim_path::ClaimPath;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// Unsigned as written: `-9223372036854775808` is read with its sign.
    Int(u64),
    Double(f64),
    Str(String),
    /// Punctuation and operators, as written.
    Punct(&'static str),
}

const PUNCTUATION: [&str; 19] = [
    "&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "-", "(", ")", "[", "]", "{", "}", ".", ",",
    ":",
];

/// Tokens with the column (1-based, in characters) each starts at.
fn lex(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' {
            let (s, next) = string(&chars, i).map_err(|e| format!("column {column}: {e}"))?;
            tokens.push((Token::Str(s), column));
            i = next;
        } else if c.is_ascii_digit() || (c == '.' && digit_at(&chars, i + 1)) {
            let (number, next) = number(&chars, i).map_err(|e| format!("column {column}: {e}"))?;
            tokens.push((number, column));
            i = next;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), column));
        } else {
            let rest: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let Some(p) = PUNCTUATION.iter().find(|p| rest.starts_with(**p)) else {
                return Err(format!("column {column}: unexpected {c:?}"));
            };
            tokens.push((Token::Punct(p), column));
            i += p.chars().count();
        }
    }
    Ok(tokens)
}

/// A quoted string from `chars[start]` (its quote); the text and the
/// index after the closing quote.
fn string(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let quote = chars[start];
    let mut out = String::new();
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((out, i + 1)),
            '\\' => {
                let escaped = match chars.get(i + 1) {
                    Some('\\') => '\\',
                    Some('"') => '"',
                    Some('\'') => '\'',
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    other => {
                        return Err(format!(
                            "the escape \\{} is not read",
                            other.copied().unwrap_or(' ')
                        ))
                    }
                };
                out.push(escaped);
                i += 2;
            }
            '\n' => return Err("a string ends at the line's end; close its quote".into()),
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Err("a string is not closed".into())
}

fn digit_at(chars: &[char], i: usize) -> bool {
    chars.get(i).is_some_and(char::is_ascii_digit)
}

/// The index past the digits of `radix` from `i`.
fn past_digits(chars: &[char], mut i: usize, radix: u32) -> usize {
    while chars.get(i).is_some_and(|c| c.is_digit(radix)) {
        i += 1;
    }
    i
}

/// A number from `chars[start]` as CEL writes one (`12`, `0x1F`, `1.5`,
/// `.5`, `1e-3`; not `1.`, which is `1` and a `.`); the token and the
/// index after it. Both kinds are read exactly: `str::parse` rounds a
/// double correctly.
fn number(chars: &[char], start: usize) -> Result<(Token, usize), String> {
    let hex = chars[start] == '0' && chars.get(start + 1) == Some(&'x');
    let mut end = past_digits(
        chars,
        if hex { start + 2 } else { start },
        if hex { 16 } else { 10 },
    );
    let mut double = false;
    if !hex && chars.get(end) == Some(&'.') && digit_at(chars, end + 1) {
        end = past_digits(chars, end + 1, 10);
        double = true;
    }
    if !hex && matches!(chars.get(end), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(end + 1), Some('+' | '-')));
        if digit_at(chars, end + 1 + sign) {
            end = past_digits(chars, end + 1 + sign, 10);
            double = true;
        }
    }
    // A number that runs on into a name is none: 1u, 0x, 0x1G, 1e.
    let mut word_end = end;
    while chars
        .get(word_end)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
    {
        word_end += 1;
    }
    let word: String = chars[start..word_end].iter().collect();
    if word_end > end || (hex && end == start + 2) {
        return Err(format!("{word:?} is not a number"));
    }
    let token = if double {
        word.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Token::Double)
            .ok_or_else(|| format!("{word:?} is not a number"))?
    } else {
        let digits = if hex { &word[2..] } else { &word[..] };
        u64::from_str_radix(digits, if hex { 16 } else { 10 })
            .map(Token::Int)
            .map_err(|_| format!("{word:?} is not a 64-bit integer"))?
    };
    Ok((token, end))
}

pub(super) fn parse(text: &str) -> Result<Expr, String> {
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err("a rule is empty".into());
    }
    let mut parser = Parser {
        tokens,
        at: 0,
        depth: 0,
        end: text.chars().count() + 1,
    };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some((t, column)) => Err(format!(
            "column {column}: unexpected {} after a complete rule",
            shown(t)
        )),
    }
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    depth: usize,
    /// The column just past the text, for "ends too early".
    end: usize,
}

fn shown(t: &Token) -> String {
    match t {
        Token::Ident(s) => format!("{s:?}"),
        Token::Int(n) => n.to_string(),
        Token::Double(f) => f.to_string(),
        Token::Str(_) => "a string".into(),
        Token::Punct(p) => format!("'{p}'"),
    }
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.at + ahead).map(|(t, _)| t)
    }

    fn column(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end, |(_, c)| *c)
    }

    fn error<T>(&self, message: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("column {}: {message}", self.column()))
    }

    fn eat(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Some(Token::Punct(q)) if *q == p) {
            self.at += 1;
            return true;
        }
        false
    }

    fn expect(&mut self, p: &str) -> Result<(), String> {
        if self.eat(p) {
            return Ok(());
        }
        match self.peek() {
            Some(t) => self.error(format!("expected '{p}', found {}", shown(t))),
            None => self.error(format!("expected '{p}', but the rule ends")),
        }
    }

    fn ident(&mut self) -> Result<String, String> {
        match self.peek() {
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.at += 1;
                Ok(name)
            }
            _ => self.error("expected a name"),
        }
    }

    /// One level deeper, until the construct that entered it is read
    /// (its caller restores the depth); refused past [`MAX_DEPTH`]. Each
    /// operator, parenthesis, list or map literal, call, index and field
    /// is a level, and every way back into [`Parser::or`] passes one, so
    /// the parser's recursion (and the tree's) is bounded.
    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        Ok(())
    }

    /// `read` one level deeper: what a bracket or an operator holds.
    fn nested<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> Result<T, String> {
        let mark = self.depth;
        self.enter()?;
        let read = read(self);
        self.depth = mark;
        read
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mark = self.depth;
        let mut left = self.and()?;
        while self.eat("||") {
            // Each operator of a chain is a level of the tree it makes.
            self.enter()?;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        self.depth = mark;
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mark = self.depth;
        let mut left = self.relation()?;
        while self.eat("&&") {
            self.enter()?;
            left = Expr::And(Box::new(left), Box::new(self.relation()?));
        }
        self.depth = mark;
        Ok(left)
    }

    fn relation(&mut self) -> Result<Expr, String> {
        let mark = self.depth;
        let left = self.relation_chain();
        self.depth = mark;
        left
    }

    fn relation_chain(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                Some(Token::Punct("==")) => Some(Op::Eq),
                Some(Token::Punct("!=")) => Some(Op::Ne),
                Some(Token::Punct("<")) => Some(Op::Lt),
                Some(Token::Punct("<=")) => Some(Op::Le),
                Some(Token::Punct(">")) => Some(Op::Gt),
                Some(Token::Punct(">=")) => Some(Op::Ge),
                Some(Token::Ident(w)) if w == "in" => None,
                _ => return Ok(left),
            };
            self.at += 1;
            self.enter()?;
            let right = self.unary()?;
            left = match (op, left, right) {
                (Some(op), left, right) => Expr::Compare(op, Box::new(left), Box::new(right)),
                (None, Expr::Const(Value::String(name)), Expr::Headers) => {
                    Expr::HasHeader(self.header_name(&name)?)
                }
                (None, _, Expr::Headers) => {
                    return self.error("'in request.headers' takes a literal name, e.g. \"x-tenant\" in request.headers")
                }
                (None, left, right) => Expr::In(Box::new(left), Box::new(right)),
            };
        }
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.eat("!") {
            self.nested(|p| Ok(Expr::Not(Box::new(p.unary()?))))
        } else if self.eat("-") {
            self.nested(Self::negative)
        } else {
            self.member()
        }
    }

    /// After `-`: a number, negated.
    fn negative(&mut self) -> Result<Expr, String> {
        // The one integer whose digits alone are past i64: CEL reads the
        // sign with them.
        if self.peek() == Some(&Token::Int(i64::MIN.unsigned_abs())) {
            self.at += 1;
            return Ok(Expr::Const(Value::from(i64::MIN)));
        }
        match self.unary()? {
            Expr::Const(Value::Number(n)) => Ok(Expr::Const(
                negated(&n).ok_or("a number too large to negate")?,
            )),
            _ => self.error("'-' is read before a number only"),
        }
    }

    /// A primary expression and what follows it: `.name`, `.method(...)`, `[index]`.
    fn member(&mut self) -> Result<Expr, String> {
        let mark = self.depth;
        let expr = self.member_chain();
        self.depth = mark;
        expr
    }

    fn member_chain(&mut self) -> Result<Expr, String> {
        let mut expr = match self.peek() {
            Some(Token::Ident(w)) if w == "claims" => {
                self.at += 1;
                self.claim_path()?
            }
            Some(Token::Ident(w)) if w == "request" => {
                self.at += 1;
                self.request_field()?
            }
            _ => self.primary()?,
        };
        loop {
            if self.eat("[") {
                self.enter()?;
                let index = self.or()?;
                self.expect("]")?;
                expr = match (expr, index) {
                    (Expr::Headers, Expr::Const(Value::String(name))) => {
                        Expr::Header(self.header_name(&name)?)
                    }
                    (Expr::Headers, _) => return self.error(
                        "request.headers takes a literal name, e.g. request.headers[\"x-tenant\"]",
                    ),
                    (expr, index) => Expr::Index(Box::new(expr), Box::new(index)),
                };
            } else if self.eat(".") {
                self.enter()?;
                let name = self.ident()?;
                expr = match (expr, self.eat("(")) {
                    (expr, true) => self.method(expr, &name)?,
                    (Expr::Headers, false) => Expr::Header(self.header_name(&name)?),
                    (expr, false) => Expr::Field(Box::new(expr), name),
                };
            } else {
                return Ok(expr);
            }
        }
    }

    /// After `claims`: names (`.name`, `["name"]`) up to the first call or
    /// other index; none is the map of every claim.
    fn claim_path(&mut self) -> Result<Expr, String> {
        let mut segments = Vec::new();
        loop {
            match (self.peek(), self.peek_at(1), self.peek_at(2)) {
                (Some(Token::Punct(".")), Some(Token::Ident(name)), next)
                    if next != Some(&Token::Punct("(")) =>
                {
                    segments.push(name.clone());
                    self.at += 2;
                }
                (Some(Token::Punct("[")), Some(Token::Str(name)), Some(Token::Punct("]"))) => {
                    segments.push(name.clone());
                    self.at += 3;
                }
                _ => break,
            }
        }
        Ok(ClaimPath::from_segments(segments).map_or(Expr::Claims, Expr::Claim))
    }

    /// A header's name as a rule writes it: the name a client sends and
    /// the upstream gets, so never with `_` (which CGI reads as `-`).
    fn header_name(&self, name: &str) -> Result<HeaderName, String> {
        if name.contains('_') {
            return self.error(format!(
                "{name:?}: a header is read by its '-' spelling; '_' spellings are dropped or read as it"
            ));
        }
        if name.eq_ignore_ascii_case("host") {
            return self
                .error("the host is request.host (portero may write the Host header itself)");
        }
        HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .or_else(|_| self.error(format!("{name:?} is not a header name")))
    }

    fn request_field(&mut self) -> Result<Expr, String> {
        self.expect(".")?;
        let name = self.ident()?;
        Ok(match name.as_str() {
            "method" => Expr::Request(Field::Method),
            "path" => Expr::Request(Field::Path),
            "host" => Expr::Request(Field::Host),
            "headers" => Expr::Headers,
            other => {
                self.at -= 1;
                return self.error(format!(
                    "request has no {other:?}: it has method, path, host and headers"
                ));
            }
        })
    }

    /// `receiver.name(` has been read.
    fn method(&mut self, receiver: Expr, name: &str) -> Result<Expr, String> {
        let method = match name {
            "startsWith" => Method::StartsWith,
            "endsWith" => Method::EndsWith,
            "contains" => Method::Contains,
            "size" => {
                self.expect(")")?;
                return Ok(Expr::Size(Box::new(receiver)));
            }
            other => {
                return self.error(format!(
                    "no method {other:?}: startsWith, endsWith, contains and size are"
                ))
            }
        };
        let argument = self.or()?;
        self.expect(")")?;
        Ok(Expr::Call(method, Box::new(receiver), Box::new(argument)))
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let Some(token) = self.peek().cloned() else {
            return self.error("the rule ends where a value belongs");
        };
        self.at += 1;
        match token {
            Token::Int(n) => match i64::try_from(n) {
                Ok(n) => Ok(Expr::Const(Value::from(n))),
                Err(_) => {
                    self.at -= 1;
                    self.error(format!("\"{n}\" is not a 64-bit integer"))
                }
            },
            Token::Double(f) => Ok(Expr::Const(Value::from(f))),
            Token::Str(s) => Ok(Expr::Const(Value::String(s))),
            Token::Punct("(") => self.nested(|p| {
                let inner = p.or()?;
                p.expect(")")?;
                Ok(inner)
            }),
            Token::Punct("[") => self.nested(Self::list),
            Token::Punct("{") => self.nested(Self::map),
            Token::Ident(w) => self.named(&w),
            other => {
                self.at -= 1;
                self.error(format!("unexpected {}", shown(&other)))
            }
        }
    }

    /// A literal name or a function: `true`, `false`, `null`, `has(...)`, `size(...)`.
    fn named(&mut self, word: &str) -> Result<Expr, String> {
        match word {
            "true" => Ok(Expr::Const(Value::Bool(true))),
            "false" => Ok(Expr::Const(Value::Bool(false))),
            "null" => Ok(Expr::Const(Value::Null)),
            "has" => {
                self.expect("(")?;
                let target = self.nested(Self::or)?;
                let field = self.ends_in_field();
                self.expect(")")?;
                self.has(target, field)
            }
            "size" => {
                self.expect("(")?;
                let target = self.nested(Self::or)?;
                self.expect(")")?;
                Ok(Expr::Size(Box::new(target)))
            }
            other => {
                self.at -= 1;
                self.error(format!(
                    "unknown name {other:?}: a rule reads claims and request"
                ))
            }
        }
    }

    /// Whether what was just read ends in a field, `.name`.
    fn ends_in_field(&self) -> bool {
        let before = |n: usize| self.at.checked_sub(n).map(|i| &self.tokens[i].0);
        matches!(
            (before(2), before(1)),
            (Some(Token::Punct(".")), Some(Token::Ident(_)))
        )
    }

    /// `has(e.f)`, CEL's: whether the map `e` holds the key `f`; an error
    /// when `e` is not there or not a map. It takes a field only.
    fn has(&self, target: Expr, field: bool) -> Result<Expr, String> {
        match target {
            _ if !field => self.error(
                "has() takes a field, e.g. has(claims.email), has(claims.a.b); \
                 for a name that is not one, \"https://example.com/roles\" in claims",
            ),
            Expr::Claim(path) => {
                let (holder, name) = path.split_last();
                let holder = holder.map_or(Expr::Claims, Expr::Claim);
                Ok(Expr::HasField(Box::new(holder), name))
            }
            Expr::Field(map, name) => Ok(Expr::HasField(map, name)),
            // A request always has its method, path and host (a method it
            // cannot tell is an error when read, not an absent field).
            Expr::Request(_) => Ok(Expr::Const(Value::Bool(true))),
            Expr::Header(name) => Ok(Expr::HasHeader(name)),
            _ => self.error("has() takes a field, e.g. has(claims.email), has(claims.a.b)"),
        }
    }

    /// After `[`: items up to `]`; a list of literals is a literal.
    fn list(&mut self) -> Result<Expr, String> {
        let mut items = Vec::new();
        while !self.eat("]") {
            items.push(self.or()?);
            if !self.eat(",") {
                self.expect("]")?;
                break;
            }
        }
        if items.iter().all(|e| matches!(e, Expr::Const(_))) {
            let values = items.into_iter().map(|e| match e {
                Expr::Const(v) => v,
                _ => unreachable!("all constants"),
            });
            return Ok(Expr::Const(Value::Array(values.collect())));
        }
        Ok(Expr::List(items))
    }

    /// After `{`: string keys and literal values up to `}`.
    fn map(&mut self) -> Result<Expr, String> {
        let mut map = Map::new();
        while !self.eat("}") {
            let key = match self.or()? {
                Expr::Const(Value::String(key)) => key,
                _ => return self.error("a map's keys are strings"),
            };
            self.expect(":")?;
            let value = match self.or()? {
                Expr::Const(value) => value,
                _ => return self.error("a map literal holds literals only"),
            };
            if map.insert(key.clone(), value).is_some() {
                return self.error(format!("the key {key:?} is in the map twice"));
            }
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        Ok(Expr::Const(Value::Object(map)))
    }
}

fn negated(n: &Number) -> Option<Value> {
    match n.as_i64() {
        Some(i) => i.checked_neg().map(Value::from),
        None => n.as_f64().map(|f| Value::from(-f)),
    }
}
