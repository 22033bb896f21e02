//! The types a rule can be told at load: literals and the request's
//! fields have theirs; a claim's is known only when a token carries it
//! (`Dyn`). A rule whose types can never fit (`claims.age < "x"`,
//! `"a".startsWith(1)`, `request.method in 3`) is refused when read.

use serde_json::Value;

use super::{Expr, Op};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Dyn,
    Null,
    Bool,
    Int,
    Double,
    Str,
    List,
    Map,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Dyn => "value",
            Ty::Null => "null",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::Str => "string",
            Ty::List => "list",
            Ty::Map => "map",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Double)
    }

    /// Whether a value of this type may be one of `wanted`.
    fn fits(self, wanted: &[Ty]) -> bool {
        self == Ty::Dyn || wanted.contains(&self)
    }
}

/// Refuses a rule that cannot be true or false.
pub(super) fn boolean(expr: &Expr) -> Result<(), String> {
    match ty(expr)? {
        Ty::Bool | Ty::Dyn => Ok(()),
        other => Err(format!(
            "a rule must be true or false; this one is {}",
            article(other.name())
        )),
    }
}

fn of_value(v: &Value) -> Ty {
    match v {
        Value::Null => Ty::Null,
        Value::Bool(_) => Ty::Bool,
        Value::Number(n) if n.is_f64() => Ty::Double,
        Value::Number(_) => Ty::Int,
        Value::String(_) => Ty::Str,
        Value::Array(_) => Ty::List,
        Value::Object(_) => Ty::Map,
    }
}

fn want(t: Ty, wanted: &[Ty], what: &str) -> Result<(), String> {
    if t.fits(wanted) {
        return Ok(());
    }
    let names: Vec<String> = wanted.iter().map(|t| article(t.name())).collect();
    Err(format!(
        "{what}: {} is needed, not {}",
        names.join(" or "),
        article(t.name())
    ))
}

fn article(name: &str) -> String {
    match name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        true => format!("an {name}"),
        false => format!("a {name}"),
    }
}

fn ty(expr: &Expr) -> Result<Ty, String> {
    Ok(match expr {
        Expr::Const(v) => of_value(v),
        Expr::Claim(_) => Ty::Dyn,
        Expr::Claims => Ty::Map,
        Expr::Request(_) => Ty::Str,
        Expr::Headers => {
            return Err(
                "request.headers is read by a literal name: request.headers[\"x-tenant\"], \
                 \"x-tenant\" in request.headers"
                    .into(),
            )
        }
        Expr::Header(_) => Ty::Str,
        Expr::HasHeader(_) => Ty::Bool,
        Expr::List(_) => {
            return Err(
                "a list with an item that is not a literal is read only after 'in', \
                 e.g. claims.tenant in [claims.home, \"shared\"]"
                    .into(),
            )
        }
        Expr::Not(e) => {
            want(ty(e)?, &[Ty::Bool], "'!'")?;
            Ty::Bool
        }
        Expr::And(a, b) | Expr::Or(a, b) => {
            want(ty(a)?, &[Ty::Bool], "'&&' and '||'")?;
            want(ty(b)?, &[Ty::Bool], "'&&' and '||'")?;
            Ty::Bool
        }
        Expr::Compare(op, a, b) => compare(*op, ty(a)?, ty(b)?)?,
        Expr::In(item, collection) => {
            let item = ty(item)?;
            let collection_ty = match &**collection {
                Expr::List(items) => {
                    for item in items {
                        ty(item)?;
                    }
                    Ty::List
                }
                other => ty(other)?,
            };
            want(collection_ty, &[Ty::List, Ty::Map], "'in'")?;
            // As CEL's checker: a map literal with keys has string keys.
            // `{}` and a claim's map have no key type known, and a key of
            // another type is in neither (false, not an error).
            if matches!(&**collection, Expr::Const(Value::Object(m)) if !m.is_empty()) {
                want(item, &[Ty::Str], "a key before 'in'")?;
            }
            Ty::Bool
        }
        Expr::HasField(map, _) => {
            want(ty(map)?, &[Ty::Map], "has()")?;
            Ty::Bool
        }
        Expr::Size(e) => {
            want(ty(e)?, &[Ty::Str, Ty::List, Ty::Map], "size()")?;
            Ty::Int
        }
        Expr::Call(_, receiver, argument) => {
            want(
                ty(receiver)?,
                &[Ty::Str],
                "startsWith, endsWith and contains",
            )?;
            want(
                ty(argument)?,
                &[Ty::Str],
                "startsWith, endsWith and contains",
            )?;
            Ty::Bool
        }
        Expr::Index(e, index) => index_of(ty(e)?, ty(index)?)?,
        Expr::Field(e, name) => match ty(e)? {
            Ty::Map | Ty::Dyn => Ty::Dyn,
            other => return Err(format!("{} has no field {name:?}", article(other.name()))),
        },
    })
}

fn compare(op: Op, a: Ty, b: Ty) -> Result<Ty, String> {
    let known = a != Ty::Dyn && b != Ty::Dyn;
    if matches!(op, Op::Eq | Op::Ne) {
        if known && a != b && !(a.numeric() && b.numeric()) {
            return Err(format!(
                "compares {} with {}: never equal",
                article(a.name()),
                article(b.name())
            ));
        }
        return Ok(Ty::Bool);
    }
    let orderable = |t: Ty| t.fits(&[Ty::Int, Ty::Double, Ty::Str]);
    if !orderable(a) || !orderable(b) || (known && a.numeric() != b.numeric()) {
        return Err(format!(
            "orders numbers with numbers and strings with strings, not {} with {}",
            article(a.name()),
            article(b.name())
        ));
    }
    Ok(Ty::Bool)
}

fn index_of(collection: Ty, index: Ty) -> Result<Ty, String> {
    match collection {
        Ty::List => want(index, &[Ty::Int], "a list's index")?,
        Ty::Map => want(index, &[Ty::Str], "a map's index")?,
        Ty::Dyn => want(index, &[Ty::Int, Ty::Str], "an index")?,
        other => return Err(format!("{} cannot be indexed", article(other.name()))),
    }
    Ok(Ty::Dyn)
}
