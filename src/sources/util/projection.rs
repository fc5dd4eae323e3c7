//! Which parts of a JSON payload a route reads, so that parsing keeps those and only scans
//! past the rest. A 10 KB Shopify order is mostly line items the route never looks at: building
//! them into a `serde_json::Value` (a map and a string allocation per member) and dropping them
//! again cost more than verifying, mapping and encoding the whole request.
//!
//! A projection is built from JSONPaths: the sender's own reads and every path of the route's
//! mapping. Only the plain prefix of a path narrows it down (member names, `*`, indices);
//! whatever follows (filters, descendants, slices) keeps the whole subtree there, and a path
//! that refers to the root again inside a filter keeps the whole payload. So a projected
//! payload answers every path of its route exactly as the whole payload would.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The parts of a value that are read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Projection {
    /// The whole value.
    #[default]
    All,
    /// Of an object, the named members, plus `every` member; of an array, `every` element
    /// (elements keep their positions; unread ones are emptied). A scalar is kept as it is.
    Parts {
        members: BTreeMap<String, Projection>,
        every: Option<Box<Projection>>,
    },
}

/// Reads nothing below a value: its members are skipped.
static NOTHING: Projection = Projection::Parts {
    members: BTreeMap::new(),
    every: None,
};

/// One step of a path's plain prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Member(String),
    /// `*`, or an index: every member or element (indices are not narrowed further).
    Every,
}

impl Projection {
    /// The parts the paths select. An empty list reads nothing.
    pub fn of_paths<'a>(paths: impl IntoIterator<Item = &'a str>) -> Self {
        let mut projection = NOTHING.clone();
        for path in paths {
            projection.include(&plain_prefix(path));
        }
        projection.spread_every();
        projection
    }

    pub fn is_all(&self) -> bool {
        matches!(self, Projection::All)
    }

    fn include(&mut self, steps: &[Step]) {
        let Some((step, rest)) = steps.split_first() else {
            *self = Projection::All;
            return;
        };
        let Projection::Parts { members, every } = self else {
            return;
        };
        let next = match step {
            Step::Member(name) => members.entry(name.clone()).or_insert(NOTHING.clone()),
            Step::Every => every.get_or_insert_with(|| Box::new(NOTHING.clone())),
        };
        next.include(rest);
    }

    fn merge(&mut self, other: &Projection) {
        match (&mut *self, other) {
            (Projection::All, _) => {}
            (_, Projection::All) => *self = Projection::All,
            (
                Projection::Parts { members, every },
                Projection::Parts {
                    members: other_members,
                    every: other_every,
                },
            ) => {
                for (name, part) in other_members {
                    members
                        .entry(name.clone())
                        .or_insert(NOTHING.clone())
                        .merge(part);
                }
                if let Some(other_every) = other_every {
                    every
                        .get_or_insert_with(|| Box::new(NOTHING.clone()))
                        .merge(other_every);
                }
            }
        }
    }

    /// Folds `every` into each named member, so parsing looks a member up in one place.
    fn spread_every(&mut self) {
        if let Projection::Parts { members, every } = self {
            if let Some(every) = every {
                every.spread_every();
                for part in members.values_mut() {
                    part.merge(every);
                }
            }
            for part in members.values_mut() {
                part.spread_every();
            }
        }
    }

    fn member(&self, name: &str) -> Option<&Projection> {
        match self {
            Projection::All => Some(&Projection::All),
            Projection::Parts { members, every } => members.get(name).or(every.as_deref()),
        }
    }

    fn element(&self) -> &Projection {
        match self {
            Projection::All => &Projection::All,
            Projection::Parts { every, .. } => every.as_deref().unwrap_or(&NOTHING),
        }
    }
}

/// The steps of a JSONPath's plain prefix (`$.a.b[*]['c']`), up to the first segment it cannot
/// narrow down. Conservative by construction: anything unrecognised ends the prefix, and a
/// path that names the root twice (`$.a[?@.b == $.c]`) has no prefix at all.
fn plain_prefix(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let Some(mut rest) = path.trim().strip_prefix('$') else {
        return steps;
    };
    if rest.contains('$') {
        return steps;
    }
    loop {
        let (step, after) = if let Some(after) = rest.strip_prefix(".*") {
            (Step::Every, after)
        } else if let Some(after) = rest.strip_prefix("[*]") {
            (Step::Every, after)
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            // A name may go on in non-ASCII letters (`$.aé`): only ASCII names are narrowed.
            let continues = after[end..].starts_with(|c: char| !c.is_ascii());
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) || continues {
                break;
            }
            (Step::Member(name.to_string()), &after[end..])
        } else if let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else { break };
            let selector = &inner[..end];
            let quoted = selector
                .strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .or_else(|| selector.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
            let step = match quoted {
                Some(name) if !name.contains(['\'', '"', '\\']) => Step::Member(name.to_string()),
                None if is_index(selector) => Step::Every,
                _ => break,
            };
            (step, &inner[end + 1..])
        } else {
            break;
        };
        steps.push(step);
        rest = after;
    }
    steps
}

fn is_index(selector: &str) -> bool {
    let digits = selector.strip_prefix('-').unwrap_or(selector);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A JSON document parsed keeping only what `projection` reads, refusing values nested deeper
/// than `max_depth` (the top level is depth 1) anywhere in the document, read or not.
pub fn parse(
    body: &[u8],
    projection: &Projection,
    max_depth: usize,
) -> Result<Value, ProjectedParseError> {
    let limits = Limits {
        max_depth,
        too_deep: Cell::new(false),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let parsed = Keep {
        projection,
        depth: 1,
        limits: &limits,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    parsed.map_err(|error| {
        if limits.too_deep.get() {
            ProjectedParseError::TooDeep
        } else {
            ProjectedParseError::Json(error)
        }
    })
}

#[derive(Debug)]
pub enum ProjectedParseError {
    TooDeep,
    Json(serde_json::Error),
}

struct Limits {
    max_depth: usize,
    too_deep: Cell<bool>,
}

impl Limits {
    fn check<E: de::Error>(&self, depth: usize) -> Result<(), E> {
        if depth > self.max_depth {
            self.too_deep.set(true);
            return Err(E::custom("nested too deeply"));
        }
        Ok(())
    }
}

/// Builds the value at one position, keeping what its projection reads.
struct Keep<'p> {
    projection: &'p Projection,
    depth: usize,
    limits: &'p Limits,
}

impl<'de> DeserializeSeed<'de> for Keep<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.limits.check(self.depth)?;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Keep<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let element = self.projection.element();
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(Keep {
            projection: element,
            depth: self.depth + 1,
            limits: self.limits,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        let depth = self.depth + 1;
        while let Some(name) = map.next_key_seed(MemberName)? {
            match self.projection.member(&name) {
                Some(projection) => {
                    let value = map.next_value_seed(Keep {
                        projection,
                        depth,
                        limits: self.limits,
                    })?;
                    members.insert(name.into_owned(), value);
                }
                None => map.next_value_seed(Skip {
                    depth,
                    limits: self.limits,
                })?,
            }
        }
        Ok(Value::Object(members))
    }
}

/// A member name, borrowed from the body when it has no escapes (as most do).
struct MemberName;

impl<'de> DeserializeSeed<'de> for MemberName {
    type Value = std::borrow::Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = std::borrow::Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(std::borrow::Cow::Owned(v))
    }
}

/// Scans past a value nobody reads, still checking its syntax and depth.
struct Skip<'p> {
    depth: usize,
    limits: &'p Limits,
}

impl<'de> DeserializeSeed<'de> for Skip<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        self.limits.check(self.depth)?;
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Skip {
                depth: self.depth + 1,
                limits: self.limits,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(Skip {
                depth: self.depth + 1,
                limits: self.limits,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use serde_json_path::JsonPath;

    const DEPTH: usize = 64;

    fn projected(paths: &[&str], doc: &Value) -> Value {
        parse(
            doc.to_string().as_bytes(),
            &Projection::of_paths(paths.iter().copied()),
            DEPTH,
        )
        .unwrap()
    }

    fn order() -> Value {
        json!({
            "email": "a@b.co",
            "name": "#1001",
            "customer": {"first_name": "A", "note": {"long": "x"}},
            "line_items": [
                {"sku": "S-1", "title": "One", "tax_lines": [{"rate": 0.06}], "price": "1.00"},
                {"sku": "S-2", "title": "Two", "properties": [], "price": 2.5},
                "not an object",
                7
            ],
            "meta": {"x": {"sku": "deep"}, "y": [1, 2]},
            "$weird key": "w",
            "caf": "not this one",
            "café": "this one",
            "it's": "quoted"
        })
    }

    #[test]
    fn keeps_exactly_what_plain_paths_read() {
        let got = projected(
            &["$.email", "$.line_items[*].sku", "$['customer'].first_name"],
            &order(),
        );
        assert_eq!(
            got,
            json!({
                "email": "a@b.co",
                "customer": {"first_name": "A"},
                "line_items": [{"sku": "S-1"}, {"sku": "S-2"}, "not an object", 7]
            })
        );
    }

    #[test]
    fn every_member_is_merged_with_named_ones() {
        let got = projected(&["$.meta.*.sku", "$.meta.y"], &order());
        assert_eq!(got, json!({"meta": {"x": {"sku": "deep"}, "y": [1, 2]}}));
    }

    #[test]
    fn what_a_prefix_cannot_narrow_is_kept_whole() {
        let doc = order();
        for (path, kept) in [
            ("$..sku", doc.clone()),
            ("$.line_items[?@.price == $.name]", doc.clone()),
            ("$['$weird key']", doc.clone()),
            (
                "$.line_items[0:1].sku",
                json!({"line_items": doc["line_items"]}),
            ),
            (
                "$.line_items[?@.sku].title",
                json!({"line_items": doc["line_items"]}),
            ),
            ("$.customer..long", json!({"customer": doc["customer"]})),
            (r"$['it\'s']", doc.clone()),
            ("$", doc.clone()),
            ("$.café", doc.clone()),
            ("not a path", doc.clone()),
        ] {
            assert_eq!(projected(&[path], &doc), kept, "{path}");
        }
    }

    #[test]
    fn projected_payloads_answer_their_paths_like_the_whole_payload() {
        let doc = order();
        for path in [
            "$.email",
            "$.line_items[*].sku",
            "$.line_items[1].title",
            "$.line_items[-1]",
            "$.line_items[0:2].price",
            "$.line_items[?@.price > 2].sku",
            "$..sku",
            "$.meta.*",
            "$.customer['note'].long",
            "$[\"it's\"]",
            "$.missing.x",
            "$.café",
            "$.meta.y[0]",
        ] {
            let query = JsonPath::parse(path).unwrap();
            let projected = projected(&[path, "$.name"], &doc);
            assert_eq!(
                query.query(&projected).all(),
                query.query(&doc).all(),
                "{path}"
            );
        }
    }

    #[test]
    fn nothing_reads_nothing_and_all_reads_everything() {
        let doc = order();
        assert_eq!(projected(&[], &doc), json!({}));
        let all = parse(doc.to_string().as_bytes(), &Projection::All, DEPTH).unwrap();
        assert_eq!(all, doc);
    }

    #[test]
    fn later_duplicates_win_as_in_serde_json() {
        let body = br#"{"email":"first@x.co","email":"second@x.co","n":1e400}"#;
        let whole: Result<Value, _> = serde_json::from_slice(body);
        let ours = parse(body, &Projection::All, DEPTH);
        assert_eq!(whole.is_err(), ours.is_err());
        let body = br#"{"email":"first@x.co","email":"second@x.co","s":"a\u00e9\"b"}"#;
        let whole: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(parse(body, &Projection::All, DEPTH).unwrap(), whole);
    }

    #[test]
    fn depth_is_limited_in_skipped_parts_too() {
        let nested = |n: usize| {
            format!(
                r#"{{"email":"a@b.co","skip":{}1{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        let email_only = Projection::of_paths(["$.email"]);
        // The top level is 1 and "skip" is 2, so n brackets put the innermost value at n + 2.
        assert!(parse(nested(DEPTH - 2).as_bytes(), &email_only, DEPTH).is_ok());
        for projection in [&email_only, &Projection::All] {
            assert!(matches!(
                parse(nested(DEPTH - 1).as_bytes(), projection, DEPTH),
                Err(ProjectedParseError::TooDeep)
            ));
            assert!(matches!(
                parse(nested(100_000).as_bytes(), projection, DEPTH),
                Err(ProjectedParseError::TooDeep)
            ));
        }
    }

    #[test]
    fn skipped_parts_must_still_be_json() {
        let email_only = Projection::of_paths(["$.email"]);
        for body in [
            &br#"{"email":"a@b.co","x":[1,}"#[..],
            br#"{"email":"a@b.co","x":"\q"}"#,
            br#"{"email":"a@b.co"} trailing"#,
            br#"{"email":"a@b.co","x":tru}"#,
        ] {
            assert!(matches!(
                parse(body, &email_only, DEPTH),
                Err(ProjectedParseError::Json(_))
            ));
        }
    }
}
