//! The mapping file: per route, which sender, which topics, and how a submission becomes a
//! `contact_sync` (field selection, lists, tags, custom fields). Parsed from TOML, then
//! compiled and validated so that every error names its route and key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use super::guard::{AllowedOrigin, CaptchaFile, Honeypot, RouteGuard};
use super::template::Expression;
use crate::activecampaign::contact_sync::FieldKey;
use crate::sources::util::projection::Projection;
use crate::sources::{AuthSettings, DEFAULT_REPLAY_WINDOW, SenderSpec};

/// How long a route remembers a delivery by the sender's id (`dedupe_window_secs`): longer
/// than the longest retry schedule of the senders supported (Shopify 4 h, BigCommerce 48 h,
/// Stripe 3 days in live mode).
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(72 * 3600);

/// The example mapping shipped in the repository, compiled into the binary so a deployed
/// function needs no file beside it. `MAPPING_FILE` replaces it at start-up.
pub const BUNDLED_MAPPING: &str = include_str!("../../mapping.toml");
/// The same mapping as JSON, converted by build.rs: parsing the TOML was 0.31 M of the first
/// queued webhook's 6.8 M instructions, the JSON a fraction of that.
const BUNDLED_MAPPING_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/mapping.json"));
/// Topic wildcard: the route handles every topic its sender sends.
pub const ANY_TOPIC: &str = "*";

/// A mapping error, naming where it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MappingError {
    #[error("mapping file is not valid TOML: {0}")]
    Syntax(String),
    #[error("route '{route}', key '{key}': {message}")]
    Invalid {
        route: String,
        key: String,
        message: String,
    },
}

fn invalid(route: &str, key: impl Into<String>, message: impl Into<String>) -> MappingError {
    MappingError::Invalid {
        route: route.to_string(),
        key: key.into(),
        message: message.into(),
    }
}

// ---- The file as written ----

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    routes: BTreeMap<String, RouteFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    sender: String,
    topics: Option<Vec<String>>,
    #[serde(default)]
    opt_in: bool,
    #[serde(default)]
    exclude_automations: bool,
    replay_window_secs: Option<u64>,
    /// `false` delivers every retry of a sender again.
    dedupe: Option<bool>,
    dedupe_window_secs: Option<u64>,
    redirect: Option<String>,
    #[serde(default)]
    contact: ContactFile,
    #[serde(default)]
    lists: Vec<ListFile>,
    form: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    /// A hidden form field that people leave empty and bots fill.
    honeypot: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    captcha: Option<CaptchaFile>,
    #[serde(default)]
    tag_values: BTreeMap<String, Vec<String>>,
    /// HubSpot: refuse the legacy signatures, which carry no timestamp (default true).
    require_timestamped: Option<bool>,
    /// WPForms: verify the sender's signature instead of the route token.
    #[serde(default)]
    signed: bool,
    rate_limit_per_ip: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactFile {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    full_name: Option<String>,
    phone: Option<String>,
    organization: Option<String>,
    ip4: Option<String>,
    consent: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListFile {
    id: u64,
    #[serde(default)]
    status: ListPolicy,
    instant_responders: Option<bool>,
    no_responders: Option<bool>,
    last_message: Option<bool>,
    sdate: Option<String>,
}

/// When a route puts a contact on a list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListPolicy {
    /// Subscribe only when the payload carries marketing consent.
    #[default]
    Consent,
    /// Subscribe on every event.
    Always,
    /// Unsubscribe (`status=2`).
    Unsubscribe,
}

// ---- The compiled, validated form ----

/// Selections overriding the sender's defaults.
#[derive(Debug, Clone, Default)]
pub struct ContactSelection {
    pub email: Option<Expression>,
    pub first_name: Option<Expression>,
    pub last_name: Option<Expression>,
    pub full_name: Option<Expression>,
    pub phone: Option<Expression>,
    pub organization: Option<Expression>,
    pub ip4: Option<Expression>,
    pub consent: Option<Expression>,
}

#[derive(Debug, Clone)]
pub struct ListRule {
    pub id: u64,
    pub policy: ListPolicy,
    pub instant_responders: Option<bool>,
    pub no_responders: Option<bool>,
    pub last_message: Option<bool>,
    pub sdate: Option<Expression>,
}

#[derive(Debug, Clone)]
pub struct FieldRule {
    pub key: FieldKey,
    pub value: Expression,
}

/// One validated route.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// Declared in the mapping file; a built-in default route is not.
    pub configured: bool,
    pub sender: &'static SenderSpec,
    /// Topics handled; empty means every topic.
    pub topics: Vec<String>,
    /// Events on this route are explicit opt-ins, so `status=1` may re-subscribe.
    pub opt_in: bool,
    /// Bulk imports ask ActiveCampaign not to run automations for these contacts.
    pub exclude_automations: bool,
    /// How long a delivery is remembered by the sender's id, so that a retry is answered
    /// from the first answer; `None` when the route turned deduplication off.
    pub dedupe_window: Option<Duration>,
    pub auth: AuthSettings,
    pub redirect: Option<String>,
    pub contact: ContactSelection,
    pub lists: Vec<ListRule>,
    pub form: Option<u64>,
    pub tags: Vec<Expression>,
    pub fields: Vec<FieldRule>,
    /// Honeypot, origins, captcha, tag values: what the route trusts of a request.
    pub guard: RouteGuard,
    /// What of a JSON payload the sender and this route's expressions read.
    pub projection: Projection,
}

impl Route {
    /// The zero-configuration route of a sender.
    pub fn default_for(sender: &'static SenderSpec) -> Self {
        Self {
            name: sender.name.to_string(),
            configured: false,
            sender,
            topics: sender
                .default_topics
                .iter()
                .map(|t| t.to_string())
                .collect(),
            opt_in: false,
            exclude_automations: false,
            dedupe_window: Some(DEFAULT_DEDUPE_WINDOW),
            auth: AuthSettings::default(),
            redirect: None,
            contact: ContactSelection::default(),
            lists: Vec::new(),
            form: None,
            tags: Vec::new(),
            fields: Vec::new(),
            guard: RouteGuard::default(),
            projection: sender.projection([]),
        }
    }

    /// Every JSONPath of the route's expressions. The destructuring is exhaustive on purpose:
    /// an expression added to the route without being listed here fails to compile, rather than
    /// finding its part of the payload skipped.
    fn expression_paths(&self) -> Vec<&str> {
        let Route {
            contact:
                ContactSelection {
                    email,
                    first_name,
                    last_name,
                    full_name,
                    phone,
                    organization,
                    ip4,
                    consent,
                },
            lists,
            tags,
            fields,
            guard:
                RouteGuard {
                    honeypot,
                    captcha,
                    allowed_origins: _,
                    tag_values: _,
                    rate_limit_per_ip: _,
                },
            name: _,
            configured: _,
            sender: _,
            topics: _,
            opt_in: _,
            exclude_automations: _,
            dedupe_window: _,
            auth: _,
            redirect: _,
            form: _,
            projection: _,
        } = self;
        let contact = [
            email,
            first_name,
            last_name,
            full_name,
            phone,
            organization,
            ip4,
            consent,
        ]
        .into_iter()
        .flatten();
        let lists = lists.iter().flat_map(
            |ListRule {
                 sdate,
                 id: _,
                 policy: _,
                 instant_responders: _,
                 no_responders: _,
                 last_message: _,
             }| sdate,
        );
        let fields = fields.iter().map(|FieldRule { value, key: _ }| value);
        let guard = honeypot
            .iter()
            .map(|h| &h.path)
            .chain(captcha.iter().map(|c| &c.path));
        contact
            .chain(lists)
            .chain(tags)
            .chain(fields)
            .chain(guard)
            .flat_map(Expression::paths)
            .collect()
    }

    /// Whether the route handles this topic (senders without topics are always handled).
    pub fn handles(&self, topic: Option<&str>) -> bool {
        match topic {
            None => true,
            Some(topic) => self.topics.is_empty() || self.topics.iter().any(|t| t == topic),
        }
    }
}

/// Every route, the built-in defaults included.
#[derive(Debug, Clone)]
pub struct Mapping {
    routes: BTreeMap<String, Route>,
}

impl Mapping {
    /// Parses and validates a mapping file.
    pub fn from_toml(source: &str) -> Result<Self, MappingError> {
        let file: MappingFile =
            toml::from_str(source).map_err(|e| MappingError::Syntax(e.to_string()))?;
        Self::from_file(file)
    }

    fn from_file(file: MappingFile) -> Result<Self, MappingError> {
        let mut routes = BTreeMap::new();
        for &sender in crate::sources::SENDERS {
            routes.insert(sender.name.to_string(), Route::default_for(sender));
        }
        for (name, route) in file.routes {
            let compiled = compile_route(&name, route)?;
            routes.insert(name, compiled);
        }
        Ok(Self { routes })
    }

    /// The mapping bundled with the build.
    pub fn bundled() -> Result<Self, MappingError> {
        match serde_json::from_str(BUNDLED_MAPPING_JSON) {
            Ok(file) => Self::from_file(file),
            // A value of the wrong type, or no JSON at all (build.rs writes none for a NaN or
            // an infinity): the TOML's reading names the line, or the route and key.
            Err(_) => Self::from_toml(BUNDLED_MAPPING),
        }
    }

    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.get(name)
    }

    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }
}

/// Route names are URL path segments: lower-case letters, digits, `-` and `_`.
pub fn is_valid_route_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn compile_route(name: &str, file: RouteFile) -> Result<Route, MappingError> {
    if !is_valid_route_name(name) {
        return Err(invalid(
            name,
            "routes",
            "a route name may hold only a-z, 0-9, '-' and '_' (at most 64)",
        ));
    }
    let expr = |key: &str, source: &Option<String>| -> Result<Option<Expression>, MappingError> {
        source
            .as_deref()
            .map(|s| Expression::compile(s).map_err(|m| invalid(name, key, m)))
            .transpose()
    };
    let sender = crate::sources::sender(&file.sender).ok_or_else(|| {
        invalid(
            name,
            "sender",
            format!(
                "unknown sender '{}': one of {}",
                file.sender,
                crate::sources::sender_names()
            ),
        )
    })?;
    let topics = match file.topics.clone() {
        None => sender
            .default_topics
            .iter()
            .map(|t| t.to_string())
            .collect(),
        Some(topics) if topics.iter().any(|t| t == ANY_TOPIC) => Vec::new(),
        Some(topics) => {
            if topics.is_empty() || topics.iter().any(|t| t.trim().is_empty()) {
                return Err(invalid(
                    name,
                    "topics",
                    "list at least one topic, or \"*\" for every topic",
                ));
            }
            topics
        }
    };
    if let Some(redirect) = &file.redirect {
        if sender != &crate::sources::form::SPEC {
            return Err(invalid(
                name,
                "redirect",
                "only a `form` route can redirect a browser",
            ));
        }
        if !(redirect.starts_with("https://") || redirect.starts_with("http://")) {
            return Err(invalid(name, "redirect", "must be an absolute http(s) URL"));
        }
        if redirect.chars().any(char::is_control) {
            return Err(invalid(
                name,
                "redirect",
                "must not contain control characters",
            ));
        }
    }
    let replay_window = match file.replay_window_secs {
        Some(0) => {
            return Err(invalid(
                name,
                "replay_window_secs",
                "must be at least 1 second",
            ));
        }
        Some(secs) => Duration::from_secs(secs),
        None => DEFAULT_REPLAY_WINDOW,
    };
    let dedupe_window = match (file.dedupe, file.dedupe_window_secs) {
        (Some(false), Some(_)) => {
            return Err(invalid(
                name,
                "dedupe_window_secs",
                "has no effect with dedupe = false: remove one of them",
            ));
        }
        (Some(false), None) => None,
        (_, Some(0)) => {
            return Err(invalid(
                name,
                "dedupe_window_secs",
                "must be at least 1 second (dedupe = false turns deduplication off)",
            ));
        }
        (_, Some(secs)) => Some(Duration::from_secs(secs)),
        (_, None) => Some(DEFAULT_DEDUPE_WINDOW),
    };
    let c = &file.contact;
    let contact = ContactSelection {
        email: expr("contact.email", &c.email)?,
        first_name: expr("contact.first_name", &c.first_name)?,
        last_name: expr("contact.last_name", &c.last_name)?,
        full_name: expr("contact.full_name", &c.full_name)?,
        phone: expr("contact.phone", &c.phone)?,
        organization: expr("contact.organization", &c.organization)?,
        ip4: expr("contact.ip4", &c.ip4)?,
        consent: expr("contact.consent", &c.consent)?,
    };
    let mut lists = Vec::new();
    for (i, list) in file.lists.iter().enumerate() {
        if list.id == 0 {
            return Err(invalid(
                name,
                format!("lists[{i}].id"),
                "list ids start at 1",
            ));
        }
        if lists.iter().any(|l: &ListRule| l.id == list.id) {
            return Err(invalid(
                name,
                format!("lists[{i}].id"),
                "list appears twice",
            ));
        }
        if list.policy_is_unsubscribe() && list.instant_responders == Some(true) {
            return Err(invalid(
                name,
                format!("lists[{i}].instant_responders"),
                "instant responders apply only to subscriptions",
            ));
        }
        lists.push(ListRule {
            id: list.id,
            policy: list.status,
            instant_responders: list.instant_responders,
            no_responders: list.no_responders,
            last_message: list.last_message,
            sdate: expr(&format!("lists[{i}].sdate"), &list.sdate)?,
        });
    }
    if file.form == Some(0) {
        return Err(invalid(name, "form", "form ids start at 1"));
    }
    let tags = file
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| Expression::compile(t).map_err(|m| invalid(name, format!("tags[{i}]"), m)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut fields = Vec::new();
    for (key, value) in &file.fields {
        let field_key = parse_field_key(key)
            .ok_or_else(|| invalid(name, format!("fields.{key}"), "a custom field key is a numeric id (\"12\") or a personalization tag (\"%COLOR%\")"))?;
        let value =
            Expression::compile(value).map_err(|m| invalid(name, format!("fields.{key}"), m))?;
        fields.push(FieldRule {
            key: field_key,
            value,
        });
    }
    if file.signed && sender.signed_auth.is_none() {
        return Err(invalid(
            name,
            "signed",
            format!(
                "{sender} has no signature to verify in place of its token: only a wpforms route has this choice"
            ),
        ));
    }
    let guard = compile_guard(name, &file, sender, &topics, &tags)?;
    let require_timestamped = match file.require_timestamped {
        Some(_) if !sender.has_untimed_signatures() => {
            return Err(invalid(
                name,
                "require_timestamped",
                format!(
                    "{sender} signatures always carry what they carry: only a hubspot route has a choice"
                ),
            ));
        }
        Some(required) => required,
        None => true,
    };
    let mut route = Route {
        name: name.to_string(),
        configured: true,
        sender,
        topics,
        opt_in: file.opt_in,
        exclude_automations: file.exclude_automations,
        dedupe_window,
        auth: AuthSettings {
            replay_window,
            require_timestamped,
            signed: file.signed,
        },
        redirect: file.redirect,
        contact,
        lists,
        form: file.form,
        tags,
        fields,
        guard,
        projection: Projection::All,
    };
    route.projection = route.sender.projection(route.expression_paths());
    Ok(route)
}

/// The route's defences, and the rules that make a token route's configuration safe: a
/// token anyone can read must not let a stranger mint tags or re-subscribe people.
fn compile_guard(
    name: &str,
    file: &RouteFile,
    sender: &'static SenderSpec,
    topics: &[String],
    tags: &[Expression],
) -> Result<RouteGuard, MappingError> {
    let honeypot = file
        .honeypot
        .as_deref()
        .map(|field| Honeypot::compile(field).map_err(|m| invalid(name, "honeypot", m)))
        .transpose()?;
    let allowed_origins = file
        .allowed_origins
        .iter()
        .enumerate()
        .map(|(i, o)| {
            AllowedOrigin::parse(o).map_err(|m| invalid(name, format!("allowed_origins[{i}]"), m))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let captcha = file
        .captcha
        .as_ref()
        .map(|c| c.compile().map_err(|m| invalid(name, "captcha", m)))
        .transpose()?;
    if file.rate_limit_per_ip == Some(0) {
        return Err(invalid(
            name,
            "rate_limit_per_ip",
            "must be at least 1 request a minute (leave it out for no limit)",
        ));
    }
    let public = sender.authenticated_by_token(&AuthSettings {
        signed: file.signed,
        ..AuthSettings::default()
    });
    // A batch is a server's export, posted with the route's token: no browser fills a
    // honeypot or solves a captcha there, so neither can be its proof.
    if sender == &crate::sources::batch::SPEC && (file.honeypot.is_some() || captcha.is_some()) {
        let key = if file.honeypot.is_some() {
            "honeypot"
        } else {
            "captcha"
        };
        return Err(invalid(
            name,
            key,
            "a batch route takes a server's export, not a browser's post: it has no honeypot or captcha",
        ));
    }
    // A route that lists its topics bounds `{topic}`; one that takes every topic does not.
    let topic_is_bounded = !topics.is_empty();
    let mut used_keys = Vec::new();
    for (i, tag) in tags.iter().enumerate() {
        for key in tag.placeholders().filter_map(|p| p.allow_list_key()) {
            let bounded = key == "topic" && topic_is_bounded;
            if public && !bounded && !file.tag_values.contains_key(&key) {
                return Err(invalid(
                    name,
                    format!("tags[{i}]"),
                    format!(
                        "a {sender} route is authenticated only by a token that anyone may read, so a tag \
                         may take a value from the payload only from a list: add tag_values.{key} = [...], \
                         or use a fixed tag"
                    ),
                ));
            }
            used_keys.push(key);
        }
    }
    for (key, values) in &file.tag_values {
        if !used_keys.contains(key) {
            return Err(invalid(
                name,
                format!("tag_values.{key}"),
                "no tag of this route has that placeholder",
            ));
        }
        if values.is_empty() || values.iter().any(|v| v.trim().is_empty()) {
            return Err(invalid(
                name,
                format!("tag_values.{key}"),
                "list the values the tag may take (none empty)",
            ));
        }
    }
    if public && file.opt_in && captcha.is_none() && file.form.is_none() {
        return Err(invalid(
            name,
            "opt_in",
            "anyone can post to this route, so it may re-subscribe someone who unsubscribed only with \
             proof: add a captcha, or a form whose double opt-in confirms the subscription",
        ));
    }
    Ok(RouteGuard {
        honeypot,
        allowed_origins,
        captcha,
        tag_values: file.tag_values.clone(),
        rate_limit_per_ip: file.rate_limit_per_ip,
    })
}

impl ListFile {
    fn policy_is_unsubscribe(&self) -> bool {
        self.status == ListPolicy::Unsubscribe
    }
}

/// `"12"` → id 12; `"%COLOR%"` → personalization tag (upper-case letters, digits, `_`).
pub fn parse_field_key(key: &str) -> Option<FieldKey> {
    if let Ok(id) = key.parse::<u64>() {
        return (id > 0).then_some(FieldKey::Id(id));
    }
    let inner = key.strip_prefix('%')?.strip_suffix('%')?;
    let valid = !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    valid.then(|| FieldKey::PersTag(key.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(source: &str) -> String {
        Mapping::from_toml(source).unwrap_err().to_string()
    }

    #[test]
    fn bundled_mapping_is_valid_and_keeps_defaults() {
        let mapping = Mapping::bundled().expect("mapping.toml must validate");
        for &sender in crate::sources::SENDERS {
            assert!(
                mapping.route(sender.name).is_some(),
                "default route {sender}"
            );
        }
    }

    #[test]
    fn the_bundled_json_is_the_bundled_toml() {
        let from_json: MappingFile = serde_json::from_str(BUNDLED_MAPPING_JSON)
            .expect("build.rs writes JSON that reads as a mapping");
        let from_toml: MappingFile = toml::from_str(BUNDLED_MAPPING).unwrap();
        assert!(!from_toml.routes.is_empty());
        assert_eq!(format!("{from_json:?}"), format!("{from_toml:?}"));
        assert_eq!(
            format!("{:?}", Mapping::bundled().unwrap()),
            format!("{:?}", Mapping::from_toml(BUNDLED_MAPPING).unwrap())
        );
    }

    #[test]
    fn dedupe_is_on_by_default_and_its_keys_are_checked() {
        let route = |extra: &str| {
            Mapping::from_toml(&format!("[routes.r]\nsender = \"shopify\"\n{extra}"))
                .map(|m| m.route("r").unwrap().dedupe_window)
        };
        assert_eq!(route("").unwrap(), Some(DEFAULT_DEDUPE_WINDOW));
        assert_eq!(
            route("dedupe_window_secs = 60\n").unwrap(),
            Some(Duration::from_secs(60))
        );
        assert_eq!(route("dedupe = false\n").unwrap(), None);
        let error = route("dedupe = false\ndedupe_window_secs = 60\n").unwrap_err();
        assert!(error.to_string().contains("dedupe_window_secs"), "{error}");
        assert!(route("dedupe_window_secs = 0\n").is_err());
    }

    #[test]
    fn every_sender_name_is_a_valid_route_name() {
        // Each sender gets a default route of its name.
        for &sender in crate::sources::SENDERS {
            assert!(is_valid_route_name(sender.name), "{sender}");
        }
    }

    #[test]
    fn a_typeform_route_takes_names_by_field_ref() {
        let mapping = Mapping::from_toml(
            "[routes.survey]\nsender = \"typeform\"\n[routes.survey.contact]\n\
             first_name = \"$.form_response.answers[?@.field.ref == 'first_name'].text\"\n\
             last_name = \"$.form_response.answers[?@.field.ref == 'last_name'].text\"\n",
        )
        .unwrap();
        let route = mapping.route("survey").unwrap();
        let body = r#"{"event_id":"e1","event_type":"form_response","form_response":{"answers":[{"type":"text","text":"Ada","field":{"id":"a","type":"short_text","ref":"first_name"}},{"type":"text","text":"Lovelace","field":{"id":"b","type":"short_text","ref":"last_name"}},{"type":"email","email":"Ada@Example.com","field":{"id":"c","type":"email","ref":"email"}}]}}"#;
        let request = crate::sources::test_support::request(
            "/webhooks/survey",
            &[("content-type", "application/json")],
            body,
        );
        let s = crate::sources::test_support::submission(crate::sources::typeform::parse(&request));
        let crate::mapping::MappingOutcome::Contact(c) = crate::mapping::map_submission(&s, route)
        else {
            panic!("expected a contact");
        };
        assert_eq!(c.email, "ada@example.com");
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.last_name.as_deref(), Some("Lovelace"));
    }

    #[test]
    fn empty_file_gives_every_default_route() {
        let mapping = Mapping::from_toml("").unwrap();
        let shopify = mapping.route("shopify").unwrap();
        assert!(shopify.handles(Some("orders/create")));
        assert!(!shopify.handles(Some("products/update")));
        assert!(mapping.route("form").unwrap().handles(None));
    }

    #[test]
    fn errors_name_route_and_key() {
        assert_eq!(
            error_of("[routes.shop]\nsender = \"shopify\"\ntags = [\"ok\", \"{bad}\"]"),
            "route 'shop', key 'tags[1]': unknown placeholder {bad}: use a JSONPath ({$.field}) or one of topic, route, sender, sku, product"
        );
        assert!(
            error_of("[routes.shop]\nsender = \"shopify\"\nredirect = \"https://x\"")
                .starts_with("route 'shop', key 'redirect'")
        );
        assert!(
            error_of("[routes.f]\nsender = \"form\"\nfields = { \"color\" = \"$.c\" }")
                .starts_with("route 'f', key 'fields.color'")
        );
        assert!(
            error_of("[routes.f]\nsender = \"form\"\n[routes.f.contact]\nemail = \"$[\"")
                .starts_with("route 'f', key 'contact.email'")
        );
        assert!(
            error_of("[routes.f]\nsender = \"form\"\n[[routes.f.lists]]\nid = 0")
                .starts_with("route 'f', key 'lists[0].id'")
        );
        assert!(
            error_of("[routes.\"Bad Name\"]\nsender = \"form\"").starts_with("route 'Bad Name'")
        );
        let unknown = error_of("[routes.f]\nsender = \"fax\"");
        assert!(
            unknown
                .starts_with("route 'f', key 'sender': unknown sender 'fax': one of form, shopify"),
            "{unknown}"
        );
        assert!(error_of("[routes.f]\nsender = \"form\"\ncolour = 1").contains("unknown field"));
    }

    #[test]
    fn topics_wildcard_and_field_keys() {
        let m = Mapping::from_toml("[routes.all]\nsender = \"stripe\"\ntopics = [\"*\"]").unwrap();
        assert!(m.route("all").unwrap().handles(Some("charge.refunded")));
        assert_eq!(parse_field_key("12"), Some(FieldKey::Id(12)));
        assert_eq!(
            parse_field_key("%CARE_TYPE%"),
            Some(FieldKey::PersTag("%CARE_TYPE%".into()))
        );
        assert_eq!(parse_field_key("%lower%"), None);
        assert_eq!(parse_field_key("0"), None);
    }
}
