//! The mapping stage: a verified submission and its route become one `contact_sync`.

pub mod config;
pub mod guard;
pub mod template;

pub use config::{ListPolicy, Mapping, MappingError, Route};
use template::{Context, Expression};

use crate::activecampaign::contact_sync::{ContactSync, FieldValue, ListMembership, ListStatus};
use crate::email::normalise_email;
use crate::submission::{Submission, is_affirmative};

/// ActiveCampaign's text columns hold 255 characters; longer values are cut, not refused.
pub const MAX_TEXT_CHARS: usize = 255;
/// More tags than this on one contact is a payload gone wrong, not a segment.
pub const MAX_TAGS: usize = 50;
/// The longest custom field value sent, in characters (longer ones are cut): long text
/// fits, and a contact stays well inside a queue message (256 KiB) and an import record.
pub const MAX_FIELD_CHARS: usize = 16_384;

/// What the mapping stage decided.
#[derive(Debug, Clone, PartialEq)]
pub enum MappingOutcome {
    Contact(Box<ContactSync>),
    /// No contact in it: answered 200 `skipped`.
    Skipped {
        reason: String,
    },
    /// A contact ActiveCampaign could never accept: answered 200 `rejected`.
    Rejected {
        reason: String,
    },
}

/// Maps a submission through its route.
pub fn map_submission(submission: &Submission, route: &Route) -> MappingOutcome {
    let ctx = Context {
        route: &route.name,
        sender: route.sender.name,
    };
    let sel = &route.contact;
    // A selection that finds nothing falls back to the sender's default.
    let pick = |expr: &Option<Expression>, default: &Option<String>| -> Option<String> {
        expr.as_ref()
            .and_then(|e| e.first(submission, ctx))
            .or_else(|| default.clone())
            .map(|v| clean_text(&v))
            .filter(|v| !v.is_empty())
    };
    let defaults = &submission.contact;
    let Some(raw_email) = pick(&sel.email, &defaults.email) else {
        return MappingOutcome::Skipped {
            reason: "no email address in the payload".to_string(),
        };
    };
    let email = match normalise_email(&raw_email) {
        Some(email) => email,
        None => {
            return MappingOutcome::Rejected {
                reason: "invalid email address".to_string(),
            };
        }
    };
    let mut first_name = pick(&sel.first_name, &defaults.first_name);
    let mut last_name = pick(&sel.last_name, &defaults.last_name);
    if first_name.is_none()
        && last_name.is_none()
        && let Some(full) = pick(&sel.full_name, &defaults.full_name)
    {
        (first_name, last_name) = split_full_name(&full);
    }
    let consent = sel
        .consent
        .as_ref()
        .and_then(|expr| expr.first_node(&submission.payload))
        .map(is_affirmative)
        .or(submission.consent);
    let lists = route
        .lists
        .iter()
        .filter_map(|rule| {
            let status = match rule.policy {
                config::ListPolicy::Unsubscribe => ListStatus::Unsubscribed,
                config::ListPolicy::Always => ListStatus::Active,
                config::ListPolicy::Consent if consent == Some(true) => ListStatus::Active,
                config::ListPolicy::Consent => return None,
            };
            Some(ListMembership {
                list_id: rule.id,
                status,
                instant_responders: rule
                    .instant_responders
                    .filter(|_| status == ListStatus::Active),
                no_responders: rule.no_responders,
                last_message: rule.last_message,
                sdate: rule
                    .sdate
                    .as_ref()
                    .and_then(|e| e.first(submission, ctx))
                    .map(|v| clean_text(&v)),
                may_resubscribe: route.opt_in,
            })
        })
        .collect();
    let fields = route
        .fields
        .iter()
        .filter_map(|rule| {
            let values = rule.value.expand(submission, ctx);
            let value = match values.len() {
                0 => return None,
                1 => clean_text_long(&values[0]),
                // ActiveCampaign's multi-value format for checkboxes and multi-selects.
                _ => format!(
                    "||{}||",
                    values
                        .iter()
                        .map(|v| clean_text(v))
                        .collect::<Vec<_>>()
                        .join("||")
                ),
            };
            let value = if value.chars().count() > MAX_FIELD_CHARS {
                tracing::warn!(field = %rule.key.form_key(), "Custom field value cut to {MAX_FIELD_CHARS} characters.");
                value.chars().take(MAX_FIELD_CHARS).collect()
            } else {
                value
            };
            Some(FieldValue {
                key: rule.key.clone(),
                value,
            })
        })
        .collect();
    MappingOutcome::Contact(Box::new(ContactSync {
        email,
        first_name,
        last_name,
        phone: pick(&sel.phone, &defaults.phone),
        organization: pick(&sel.organization, &defaults.organization),
        ip4: pick(&sel.ip4, &defaults.ip4).filter(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok()),
        tags: build_tags(route, submission, ctx),
        lists,
        fields,
        form: route.form,
    }))
}

fn build_tags(route: &Route, submission: &Submission, ctx: Context<'_>) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    for expr in &route.tags {
        let listed = |p: &template::Placeholder<'_>, v: String| route.guard.tag_value(p, v);
        for tag in expr.expand_where(submission, ctx, listed) {
            // v1 separates tags with commas, so a comma inside a name would split it.
            let tag = clean_text(&tag.replace(',', " "));
            if !tag.is_empty()
                && !tags.iter().any(|t| t.eq_ignore_ascii_case(&tag))
                && tags.len() < MAX_TAGS
            {
                tags.push(tag);
            }
        }
    }
    tags
}

/// Trims, removes control characters (no CR/LF reaches a header or a form field), collapses
/// runs of white space and cuts to ActiveCampaign's 255 characters.
pub fn clean_text(value: &str) -> String {
    let collapsed = value
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    collapsed.chars().take(MAX_TEXT_CHARS).collect()
}

/// Like [`clean_text`] for custom field values, which may be long text: keeps newlines.
fn clean_text_long(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() || *c == '\n')
        .collect::<String>()
        .trim()
        .to_string()
}

/// Splits "Ada King Lovelace" into ("Ada", "King Lovelace").
pub fn split_full_name(full: &str) -> (Option<String>, Option<String>) {
    let full = full.trim();
    match full.split_once(char::is_whitespace) {
        Some((first, rest)) => (
            Some(first.to_string()),
            Some(rest.trim().to_string()).filter(|r| !r.is_empty()),
        ),
        None if full.is_empty() => (None, None),
        None => (Some(full.to_string()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activecampaign::contact_sync::FieldKey;
    use crate::submission::{ContactFields, Product};
    use serde_json::json;

    fn submission(consent: Option<bool>) -> Submission {
        Submission {
            topic: Some("orders/create".into()),
            delivery_id: Some("e1".into()),
            contact: ContactFields {
                email: Some("  Ada@Example.COM ".into()),
                full_name: Some("Ada King Lovelace".into()),
                phone: Some("+44 20\r\nX-Injected: 1".into()),
                ..ContactFields::default()
            },
            products: vec![Product {
                sku: Some("SKU,1".into()),
                title: Some("Engine".into()),
            }],
            consent,
            payload: json!({"note": {"color": "blue"}, "choices": ["a", "b"], "ok": "yes"}),
            from_browser_form: false,
            lookup: None,
        }
    }

    fn route(toml: &str) -> Route {
        let source = format!("[routes.r]\nsender = \"shopify\"\n{toml}");
        Mapping::from_toml(&source)
            .unwrap()
            .route("r")
            .unwrap()
            .clone()
    }

    fn contact(outcome: MappingOutcome) -> ContactSync {
        match outcome {
            MappingOutcome::Contact(c) => *c,
            other => panic!("expected a contact, got {other:?}"),
        }
    }

    #[test]
    fn defaults_split_names_and_clean_values() {
        let c = contact(map_submission(&submission(None), &route("")));
        assert_eq!(c.email, "ada@example.com");
        assert_eq!(c.first_name.as_deref(), Some("Ada"));
        assert_eq!(c.last_name.as_deref(), Some("King Lovelace"));
        assert_eq!(c.phone.as_deref(), Some("+44 20 X-Injected: 1"));
        assert!(c.lists.is_empty() && c.tags.is_empty() && c.fields.is_empty());
    }

    #[test]
    fn list_policies_follow_consent_and_opt_in() {
        let lists = "opt_in = true\n[[routes.r.lists]]\nid = 1\n[[routes.r.lists]]\nid = 2\nstatus = \"always\"\ninstant_responders = true\nsdate = \"2026-01-01 00:00:00\"\n[[routes.r.lists]]\nid = 3\nstatus = \"unsubscribe\"";
        let r = route(lists);
        let without = contact(map_submission(&submission(None), &r));
        assert_eq!(
            without.lists.iter().map(|l| l.list_id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        let with = contact(map_submission(&submission(Some(true)), &r));
        assert_eq!(with.lists.len(), 3);
        assert_eq!(with.lists[0].status, ListStatus::Active);
        assert!(with.lists[0].may_resubscribe);
        assert_eq!(with.lists[1].instant_responders, Some(true));
        assert_eq!(with.lists[1].sdate.as_deref(), Some("2026-01-01 00:00:00"));
        assert_eq!(with.lists[2].status, ListStatus::Unsubscribed);
        let not_opt_in = route("[[routes.r.lists]]\nid = 1\nstatus = \"always\"");
        assert!(!contact(map_submission(&submission(None), &not_opt_in)).lists[0].may_resubscribe);
    }

    #[test]
    fn consent_from_a_selected_path_else_the_sender() {
        let r = route("[routes.r.contact]\nconsent = \"$.ok\"\n[[routes.r.lists]]\nid = 4");
        assert_eq!(
            contact(map_submission(&submission(None), &r)).lists.len(),
            1
        );
        let missing = route("[routes.r.contact]\nconsent = \"$.nope\"\n[[routes.r.lists]]\nid = 4");
        assert_eq!(
            contact(map_submission(&submission(Some(true)), &missing))
                .lists
                .len(),
            1
        );
        assert!(
            contact(map_submission(&submission(None), &missing))
                .lists
                .is_empty()
        );
    }

    #[test]
    fn selections_fall_back_to_sender_defaults() {
        let r = route("[routes.r.contact]\nphone = \"$.nope\"\norganization = \"$.note.color\"");
        let c = contact(map_submission(&submission(None), &r));
        assert_eq!(c.phone.as_deref(), Some("+44 20 X-Injected: 1"));
        assert_eq!(c.organization.as_deref(), Some("blue"));
    }

    #[test]
    fn tags_and_fields() {
        let r = route(
            "form = 7\ntags = [\"shop\", \"sku:{sku}\", \"SHOP\", \"{topic}\"]\n[routes.r.fields]\n\"12\" = \"$.note.color\"\n\"%CHOICES%\" = \"$.choices[*]\"\n\"13\" = \"$.missing\"",
        );
        let c = contact(map_submission(&submission(None), &r));
        assert_eq!(c.tags, vec!["shop", "sku:SKU 1", "orders/create"]);
        assert_eq!(c.form, Some(7));
        assert_eq!(
            c.fields,
            vec![
                FieldValue {
                    key: FieldKey::PersTag("%CHOICES%".into()),
                    value: "||a||b||".into()
                },
                FieldValue {
                    key: FieldKey::Id(12),
                    value: "blue".into()
                },
            ]
        );
    }

    #[test]
    fn missing_or_invalid_email() {
        let mut s = submission(None);
        s.contact.email = None;
        assert!(matches!(
            map_submission(&s, &route("")),
            MappingOutcome::Skipped { .. }
        ));
        s.contact.email = Some("not-an-email".into());
        assert!(matches!(
            map_submission(&s, &route("")),
            MappingOutcome::Rejected { .. }
        ));
        let r = route("[routes.r.contact]\nemail = \"$.note.color\"");
        assert!(matches!(
            map_submission(&submission(None), &r),
            MappingOutcome::Rejected { .. }
        ));
    }

    #[test]
    fn email_normalisation() {
        assert_eq!(normalise_email("A+b@X.Org").as_deref(), Some("a+b@x.org"));
        assert_eq!(normalise_email("mailto:a@b.co").as_deref(), Some("a@b.co"));
        assert_eq!(
            normalise_email("用户@例子.广告").as_deref(),
            Some("用户@xn--fsqu00a.xn--4rr70v")
        );
        assert_eq!(
            normalise_email("用户@XN--FSQU00A.xn--4rr70v").as_deref(),
            Some("用户@xn--fsqu00a.xn--4rr70v")
        );
        for bad in [
            "a@b",
            "@b.co",
            "a@.co",
            "a@b..co",
            "a b@c.co",
            "a@b@c.co",
            "a@b.co\nx",
        ] {
            assert_eq!(normalise_email(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_is_cut_to_limit() {
        assert_eq!(clean_text(&"é".repeat(300)).chars().count(), MAX_TEXT_CHARS);
        assert_eq!(split_full_name("Cher"), (Some("Cher".into()), None));
    }
}
