//! Value expressions of the mapping file: an RFC 9535 JSONPath (`$.line_items[*].sku`) or a
//! template with placeholders (`sku:{sku}`, `order {$.name}`), expanded against a submission.

use serde_json::Value;
use serde_json_path::JsonPath;

use crate::submission::{Submission, value_as_text};

/// Most values one expression may expand to (a hostile payload could hold thousands).
pub const MAX_EXPANSIONS: usize = 100;
/// The longest value an expansion builds, in bytes (any target cuts it shorter still: 255
/// characters for tags and names, 16,384 for custom fields). A template over a 900 KB value
/// with a hundred-valued placeholder makes a hundred values of at most this, not of 900 KB.
pub const MAX_EXPANSION_BYTES: usize = 4 * crate::mapping::MAX_FIELD_CHARS;

/// `prefix` + `value`, cut at a character boundary to [`MAX_EXPANSION_BYTES`].
fn joined(prefix: &str, value: &str) -> String {
    let room = MAX_EXPANSION_BYTES.saturating_sub(prefix.len());
    let mut end = value.len().min(room);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(prefix.len() + end);
    out.push_str(prefix);
    out.push_str(&value[..end]);
    out
}

/// Names available to templates besides JSONPaths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variable {
    Topic,
    Route,
    Sender,
    Sku,
    Product,
}

impl Variable {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "topic" => Variable::Topic,
            "route" => Variable::Route,
            "sender" => Variable::Sender,
            "sku" => Variable::Sku,
            "product" => Variable::Product,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Variable(Variable),
    /// A JSONPath, and its text as written.
    Path(JsonPath, String),
}

/// A placeholder of a template, as the tag allow-list (`tag_values`) names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'e> {
    Variable(Variable),
    /// A JSONPath as written (`$.source`).
    Path(&'e str),
}

impl Placeholder<'_> {
    /// The `tag_values` key of a placeholder whose values can come from the payload: `sku`,
    /// `product`, `topic` (bounded already on a route that lists its `topics`), a top-level
    /// field's name (`source` for `$.source` or `$['source']`), or the JSONPath as written.
    /// `None` for the route's and sender's names.
    pub fn allow_list_key(&self) -> Option<String> {
        match *self {
            Placeholder::Variable(Variable::Sku) => Some("sku".into()),
            Placeholder::Variable(Variable::Product) => Some("product".into()),
            Placeholder::Variable(Variable::Topic) => Some("topic".into()),
            Placeholder::Variable(Variable::Route | Variable::Sender) => None,
            Placeholder::Path(path) => Some(top_level_name(path).unwrap_or(path).to_string()),
        }
    }
}

/// `field` of `$.field` or `$['field']`, when the path names one top-level field.
fn top_level_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('$')?;
    let name = match rest.strip_prefix('.') {
        Some(name) => name,
        None => rest
            .strip_prefix("['")
            .and_then(|r| r.strip_suffix("']"))
            .filter(|n| !n.contains(['\\', '\'']))?,
    };
    let simple = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ');
    let dotted_ok = rest.starts_with("['") || !name.contains([' ', '-']);
    (simple && dotted_ok).then_some(name)
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub struct Expression {
    segments: Vec<Segment>,
}

/// Names of the route and sender, for `{route}` and `{sender}`.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub route: &'a str,
    pub sender: &'a str,
}

impl Expression {
    /// Compiles `$…` as a JSONPath, anything else as a template.
    pub fn compile(source: &str) -> Result<Self, String> {
        let source = source.trim();
        if source.starts_with('$') {
            let path = compile_path(source)?;
            return Ok(Self {
                segments: vec![Segment::Path(path, source.to_string())],
            });
        }
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(format!("unclosed '{{' in template {source:?}"));
                    }
                    if !literal.is_empty() {
                        segments.push(Segment::Literal(std::mem::take(&mut literal)));
                    }
                    let inner = inner.trim();
                    let segment = if inner.starts_with('$') {
                        Segment::Path(compile_path(inner)?, inner.to_string())
                    } else {
                        Segment::Variable(Variable::parse(inner).ok_or_else(|| {
                            format!(
                                "unknown placeholder {{{inner}}}: use a JSONPath ({{$.field}}) \
                                 or one of topic, route, sender, sku, product"
                            )
                        })?)
                    };
                    segments.push(segment);
                }
                '}' => return Err(format!("unmatched '}}' in template {source:?}")),
                other => literal.push(other),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(literal));
        }
        Ok(Self { segments })
    }

    /// The JSONPaths the expression reads, as written, for the payload projection
    /// (`sources::util::projection`).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Path(_, source) => Some(source.as_str()),
            _ => None,
        })
    }

    /// Every value the expression yields: one per combination of multi-valued placeholders,
    /// none when any placeholder has no value (a tag `sku:{sku}` without SKUs is not made).
    pub fn expand(&self, submission: &Submission, ctx: Context<'_>) -> Vec<String> {
        self.expand_where(submission, ctx, |_, value| Some(value))
    }

    /// The placeholders of the expression, in order.
    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder<'_>> {
        self.segments.iter().filter_map(|segment| match segment {
            Segment::Literal(_) => None,
            Segment::Variable(variable) => Some(Placeholder::Variable(*variable)),
            Segment::Path(_, source) => Some(Placeholder::Path(source)),
        })
    }

    /// [`Self::expand`], each placeholder value passed through `keep`: its value, another
    /// spelling of it, or `None` to leave it out.
    pub fn expand_where(
        &self,
        submission: &Submission,
        ctx: Context<'_>,
        keep: impl Fn(&Placeholder<'_>, String) -> Option<String>,
    ) -> Vec<String> {
        let mut results = vec![String::new()];
        for segment in &self.segments {
            let (placeholder, mut values) = match segment {
                Segment::Literal(text) => (None, vec![text.clone()]),
                Segment::Variable(variable) => (
                    Some(Placeholder::Variable(*variable)),
                    variable_values(*variable, submission, ctx),
                ),
                Segment::Path(path, source) => (
                    Some(Placeholder::Path(source)),
                    path_values(path, &submission.payload),
                ),
            };
            if let Some(placeholder) = placeholder {
                values = values
                    .into_iter()
                    .filter_map(|value| keep(&placeholder, value))
                    .collect();
            }
            if values.is_empty() {
                return Vec::new();
            }
            let mut next = Vec::with_capacity((results.len() * values.len()).min(MAX_EXPANSIONS));
            'outer: for prefix in &results {
                for value in &values {
                    if next.len() == MAX_EXPANSIONS {
                        break 'outer;
                    }
                    next.push(joined(prefix, value));
                }
            }
            results = next;
        }
        results.retain(|r| !r.trim().is_empty());
        results
    }

    /// The first value, for single-valued targets (email, names).
    pub fn first(&self, submission: &Submission, ctx: Context<'_>) -> Option<String> {
        self.expand(submission, ctx).into_iter().next()
    }

    /// For a bare JSONPath: the first node selected, as JSON (for consent flags).
    pub fn first_node<'a>(&self, payload: &'a Value) -> Option<&'a Value> {
        match self.segments.as_slice() {
            [Segment::Path(path, _)] => path.query(payload).all().into_iter().next(),
            _ => None,
        }
    }
}

/// Deepest `[` nesting a JSONPath may have. The JSONPath parser backtracks on nested
/// selectors, twice as long per level (found by fuzzing: 16 nested filters take seconds, 25
/// minutes, at cold start); real paths nest two or three.
pub const MAX_PATH_NESTING: usize = 8;

fn compile_path(source: &str) -> Result<JsonPath, String> {
    if bracket_nesting(source) > MAX_PATH_NESTING {
        return Err(format!(
            "JSONPath {source:?} nests selectors deeper than {MAX_PATH_NESTING} levels"
        ));
    }
    check_unicode_escapes(source)?;
    JsonPath::parse(source).map_err(|e| format!("invalid JSONPath {source:?}: {e}"))
}

/// Refuses a `\u` escape in a string literal that is not four hex digits, or a surrogate
/// that is not half of a pair: the JSONPath parser panics on some of these (found by
/// fuzzing), and a panic at cold start would take the function down.
fn check_unicode_escapes(source: &str) -> Result<(), String> {
    let invalid = || format!("invalid JSONPath {source:?}: a \\u escape that is not a character");
    let chars: Vec<char> = source.chars().collect();
    let hex_at = |i: usize| -> Option<u32> {
        let digits: String = chars.get(i..i + 4)?.iter().collect();
        (digits.len() == 4 && digits.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(&digits, 16).ok())
            .flatten()
    };
    let (mut i, mut quote) = (0, None);
    while i < chars.len() {
        let c = chars[i];
        match quote {
            None if c == '\'' || c == '"' => quote = Some(c),
            None => {}
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => {
                if chars.get(i + 1) == Some(&'u') {
                    let unit = hex_at(i + 2).ok_or_else(invalid)?;
                    i += 5;
                    if (0xDC00..=0xDFFF).contains(&unit) {
                        return Err(invalid());
                    }
                    if (0xD800..=0xDBFF).contains(&unit) {
                        let pairs = chars.get(i + 1) == Some(&'\\')
                            && chars.get(i + 2) == Some(&'u')
                            && hex_at(i + 3).is_some_and(|low| (0xDC00..=0xDFFF).contains(&low));
                        if !pairs {
                            return Err(invalid());
                        }
                        i += 6;
                    }
                } else {
                    i += 1;
                }
            }
            Some(_) => {}
        }
        i += 1;
    }
    Ok(())
}

/// How deep `[` nests in `source`, erring high: every `[` counts, a `]` inside quotes does
/// not close (the parser may read brackets in a string literal either way).
fn bracket_nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote = None;
    let mut escaped = false;
    for c in source.chars() {
        if c == '[' {
            depth += 1;
            deepest = deepest.max(depth);
        }
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == ']' => depth = depth.saturating_sub(1),
            None => {}
        }
    }
    deepest
}

fn path_values(path: &JsonPath, payload: &Value) -> Vec<String> {
    path.query(payload)
        .all()
        .into_iter()
        .flat_map(|node| match node {
            // A selected array of scalars contributes each element.
            Value::Array(items) => items.iter().filter_map(value_as_text).collect::<Vec<_>>(),
            other => value_as_text(other).into_iter().collect::<Vec<_>>(),
        })
        .take(MAX_EXPANSIONS)
        .collect()
}

fn variable_values(variable: Variable, submission: &Submission, ctx: Context<'_>) -> Vec<String> {
    match variable {
        Variable::Topic => submission.topic.iter().cloned().collect(),
        Variable::Route => vec![ctx.route.to_string()],
        Variable::Sender => vec![ctx.sender.to_string()],
        Variable::Sku => submission
            .products
            .iter()
            .filter_map(|p| p.sku.clone())
            .collect(),
        Variable::Product => submission
            .products
            .iter()
            .filter_map(|p| p.title.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::submission::{ContactFields, Product};
    use serde_json::json;

    fn submission() -> Submission {
        Submission {
            topic: Some("orders/create".into()),
            delivery_id: None,
            contact: ContactFields::default(),
            products: vec![
                Product {
                    sku: Some("A1".into()),
                    title: Some("Apple".into()),
                },
                Product {
                    sku: None,
                    title: Some("Pear".into()),
                },
                Product {
                    sku: Some("C3".into()),
                    title: None,
                },
            ],
            consent: None,
            payload: json!({"name": "#1001", "items": [{"k": 1}, {"k": 2}], "list": ["x", "y"], "empty": ""}),
            from_browser_form: false,
            lookup: None,
        }
    }

    const CTX: Context<'static> = Context {
        route: "shop",
        sender: "shopify",
    };

    fn expand(source: &str) -> Vec<String> {
        Expression::compile(source)
            .unwrap()
            .expand(&submission(), CTX)
    }

    #[test]
    fn templates_expand_per_value() {
        assert_eq!(expand("sku:{sku}"), vec!["sku:A1", "sku:C3"]);
        assert_eq!(expand("{sender}/{topic}"), vec!["shopify/orders/create"]);
        assert_eq!(expand("order {$.name}"), vec!["order #1001"]);
        assert_eq!(expand("k{$.items[*].k}"), vec!["k1", "k2"]);
        assert_eq!(expand("$.list"), vec!["x", "y"]);
        assert_eq!(expand("{{literal}}"), vec!["{literal}"]);
        assert!(expand("x{$.missing}").is_empty());
        assert!(expand("$.empty").is_empty());
    }

    #[test]
    fn broken_unicode_escapes_are_refused_not_a_panic() {
        for path in [
            r"$[?@.key == 'a\u']",
            r"$[?@.key == 'a\u12']",
            r"$[?@.key == 'a\uZZZZ']",
            r"$[?@.key == 'a\uD800']",
            r"$[?@.key == 'a\uDC00x']",
        ] {
            assert!(
                Expression::compile(path).unwrap_err().contains("escape"),
                "{path}"
            );
        }
        assert!(Expression::compile(r"$[?@.key == 'caf\u00e9 \uD83D\uDE00']").is_ok());
    }

    #[test]
    fn compile_errors_name_the_problem() {
        assert!(
            Expression::compile("{nope}")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(
            Expression::compile("{sku")
                .unwrap_err()
                .contains("unclosed")
        );
        assert!(
            Expression::compile("$[")
                .unwrap_err()
                .contains("invalid JSONPath")
        );
        assert!(Expression::compile("a}").unwrap_err().contains("unmatched"));
    }

    #[test]
    fn expansion_is_capped() {
        let many: Vec<Value> = (0..500).map(|i| json!(i)).collect();
        let mut s = submission();
        s.payload = json!({ "n": many });
        let e = Expression::compile("{$.n[*]}-{$.n[*]}").unwrap();
        assert_eq!(e.expand(&s, CTX).len(), MAX_EXPANSIONS);
        // A huge value times a many-valued placeholder: a hundred values, each cut.
        let mut big = submission();
        big.payload = json!({"a": "é".repeat(450_000), "b": (0..200).collect::<Vec<_>>()});
        let e = Expression::compile("{$.a}-{$.b[*]}").unwrap();
        let values = e.expand(&big, CTX);
        assert_eq!(values.len(), MAX_EXPANSIONS);
        assert!(values.iter().all(|v| v.len() <= MAX_EXPANSION_BYTES + 4));
    }
}
