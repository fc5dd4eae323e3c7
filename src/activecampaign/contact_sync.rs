//! The v1 `contact_sync` parameters: one call carries contact, lists, tags and custom fields.

use serde::{Deserialize, Serialize};

/// A list's status in `status[ID]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListStatus {
    Active = 1,
    Unsubscribed = 2,
}

/// One list entry: `p[ID]`, `status[ID]` and the per-list responder options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListMembership {
    pub list_id: u64,
    pub status: ListStatus,
    pub instant_responders: Option<bool>,
    pub no_responders: Option<bool>,
    pub last_message: Option<bool>,
    /// Subscription date (`2009-12-07 06:00:00`); omitted means now.
    pub sdate: Option<String>,
    /// `status=1` re-subscribes someone who unsubscribed: allowed only for explicit opt-ins.
    /// When false, delivery first checks the contact's status on this list.
    pub may_resubscribe: bool,
}

/// A custom field key: numeric id or personalization tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FieldKey {
    Id(u64),
    PersTag(String),
}

impl FieldKey {
    /// The form key ActiveCampaign expects: `field[12,0]` or `field[%TAG%,0]`.
    pub fn form_key(&self) -> String {
        match self {
            FieldKey::Id(id) => format!("field[{id},0]"),
            FieldKey::PersTag(tag) => format!("field[{tag},0]"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldValue {
    pub key: FieldKey,
    pub value: String,
}

/// Everything one `contact_sync` call sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContactSync {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub ip4: Option<String>,
    pub tags: Vec<String>,
    pub lists: Vec<ListMembership>,
    pub fields: Vec<FieldValue>,
    pub form: Option<u64>,
}

fn flag(value: bool) -> String {
    if value { "1" } else { "0" }.to_string()
}

impl ContactSync {
    /// The form fields in a stable order, keys not yet URL-encoded.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = vec![("email".to_string(), self.email.clone())];
        let optional = [
            ("first_name", &self.first_name),
            ("last_name", &self.last_name),
            ("phone", &self.phone),
            ("customer_acct_name", &self.organization),
            ("ip4", &self.ip4),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                pairs.push((key.to_string(), value.clone()));
            }
        }
        if !self.tags.is_empty() {
            pairs.push(("tags".to_string(), self.tags.join(", ")));
        }
        for field in &self.fields {
            pairs.push((field.key.form_key(), field.value.clone()));
        }
        for list in &self.lists {
            let id = list.list_id;
            pairs.push((format!("p[{id}]"), id.to_string()));
            pairs.push((format!("status[{id}]"), (list.status as u8).to_string()));
            let options = [
                ("instantresponders", list.instant_responders),
                ("noresponders", list.no_responders),
                ("lastmessage", list.last_message),
            ];
            for (name, value) in options {
                if let Some(value) = value {
                    pairs.push((format!("{name}[{id}]"), flag(value)));
                }
            }
            if let Some(sdate) = &list.sdate {
                pairs.push((format!("sdate[{id}]"), sdate.clone()));
            }
        }
        if let Some(form) = self.form {
            pairs.push(("form".to_string(), form.to_string()));
        }
        pairs
    }

    /// Folds a later update of the same contact into this one: later values win, tags are
    /// added (ignoring case), a list's later status replaces its earlier one, and a field's
    /// later value replaces its earlier one. One exception, because queue order is arbitrary
    /// ("later" may not be later): an unsubscribe is never replaced by a subscribe that is not
    /// an explicit opt-in, in whichever order the two arrive.
    pub fn merge(&mut self, later: ContactSync) {
        let scalars = [
            (&mut self.first_name, later.first_name),
            (&mut self.last_name, later.last_name),
            (&mut self.phone, later.phone),
            (&mut self.organization, later.organization),
            (&mut self.ip4, later.ip4),
        ];
        for (target, value) in scalars {
            if value.is_some() {
                *target = value;
            }
        }
        for tag in later.tags {
            if !self.tags.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
                self.tags.push(tag);
            }
        }
        for list in later.lists {
            if let Some(i) = self.lists.iter().position(|l| l.list_id == list.list_id) {
                let weaker =
                    |l: &ListMembership| l.status == ListStatus::Active && !l.may_resubscribe;
                if self.lists[i].status == ListStatus::Unsubscribed && weaker(&list) {
                    continue;
                }
                self.lists.remove(i);
            }
            self.lists.push(list);
        }
        for field in later.fields {
            self.fields.retain(|f| f.key != field.key);
            self.fields.push(field);
        }
        if later.form.is_some() {
            self.form = later.form;
        }
    }

    /// The `application/x-www-form-urlencoded` body: every key and value percent-encoded,
    /// including the brackets, `%` and `,` of `field[%TAG%,0]`.
    pub fn encode(&self) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for (key, value) in self.form_pairs() {
            out.append_pair(&key, &value);
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsubscribe_beats_a_plain_subscribe_in_either_order() {
        let list = |status, may_resubscribe| ListMembership {
            list_id: 4,
            status,
            instant_responders: None,
            no_responders: None,
            last_message: None,
            sdate: None,
            may_resubscribe,
        };
        let contact = |l| ContactSync {
            email: "a@b.co".into(),
            lists: vec![l],
            ..ContactSync::default()
        };
        let unsubscribe = list(ListStatus::Unsubscribed, false);
        let subscribe = list(ListStatus::Active, false);
        let opt_in = list(ListStatus::Active, true);
        for (first, second) in [(&unsubscribe, &subscribe), (&subscribe, &unsubscribe)] {
            let mut merged = contact(first.clone());
            merged.merge(contact(second.clone()));
            assert_eq!(
                merged.lists,
                vec![unsubscribe.clone()],
                "{first:?} then {second:?}"
            );
        }
        // An explicit opt-in is as explicit as the unsubscribe: the later one stands.
        let mut merged = contact(unsubscribe.clone());
        merged.merge(contact(opt_in.clone()));
        assert_eq!(merged.lists, vec![opt_in.clone()]);
        let mut merged = contact(opt_in);
        merged.merge(contact(unsubscribe.clone()));
        assert_eq!(merged.lists, vec![unsubscribe]);
    }

    #[test]
    fn merge_keeps_the_latest_and_adds_tags() {
        let list = |status| ListMembership {
            list_id: 1,
            status,
            instant_responders: None,
            no_responders: None,
            last_message: None,
            sdate: None,
            may_resubscribe: false,
        };
        let mut first = ContactSync {
            email: "a@b.co".into(),
            first_name: Some("A".into()),
            phone: Some("1".into()),
            tags: vec!["Buyer".into()],
            lists: vec![list(ListStatus::Active)],
            fields: vec![FieldValue {
                key: FieldKey::Id(1),
                value: "old".into(),
            }],
            ..ContactSync::default()
        };
        first.merge(ContactSync {
            email: "a@b.co".into(),
            first_name: Some("Ada".into()),
            tags: vec!["buyer".into(), "vip".into()],
            lists: vec![list(ListStatus::Unsubscribed)],
            fields: vec![FieldValue {
                key: FieldKey::Id(1),
                value: "new".into(),
            }],
            ..ContactSync::default()
        });
        assert_eq!(first.first_name.as_deref(), Some("Ada"));
        assert_eq!(first.phone.as_deref(), Some("1"));
        assert_eq!(first.tags, vec!["Buyer", "vip"]);
        assert_eq!(first.lists, vec![list(ListStatus::Unsubscribed)]);
        assert_eq!(first.fields[0].value, "new");
    }

    #[test]
    fn encodes_every_key() {
        let contact = ContactSync {
            email: "ada+news@example.com".into(),
            first_name: Some("Ada".into()),
            tags: vec!["vip".into(), "sku:A 1".into()],
            fields: vec![
                FieldValue {
                    key: FieldKey::Id(12),
                    value: "x&y".into(),
                },
                FieldValue {
                    key: FieldKey::PersTag("%CARE_TYPE%".into()),
                    value: "full".into(),
                },
            ],
            lists: vec![ListMembership {
                list_id: 3,
                status: ListStatus::Active,
                instant_responders: Some(true),
                no_responders: None,
                last_message: Some(false),
                sdate: Some("2026-01-02 03:04:05".into()),
                may_resubscribe: true,
            }],
            form: Some(1001),
            ..ContactSync::default()
        };
        assert_eq!(
            contact.encode(),
            "email=ada%2Bnews%40example.com&first_name=Ada&tags=vip%2C+sku%3AA+1\
             &field%5B12%2C0%5D=x%26y&field%5B%25CARE_TYPE%25%2C0%5D=full\
             &p%5B3%5D=3&status%5B3%5D=1&instantresponders%5B3%5D=1&lastmessage%5B3%5D=0\
             &sdate%5B3%5D=2026-01-02+03%3A04%3A05&form=1001"
        );
    }
}
