//! The sandbox's starting state: the account's lists and custom fields (so `field[ID,0]` and
//! `field[%PERS_TAG%,0]` resolve as they would in a real account) and contacts who were there
//! before, read from a TOML file (`local/sandbox-seed.toml` is compiled in).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use ac_webhook_sync::email::normalise_email;

/// The bundled seed, matching the bundled `mapping.toml`.
const BUNDLED: &str = include_str!("../../local/sandbox-seed.toml");

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedList {
    pub id: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedField {
    pub id: u64,
    /// Without the `%` signs, upper case (`SIGNUP_PAGE`).
    pub perstag: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SeedStatus {
    Active,
    Unsubscribed,
}

#[derive(Debug, Clone, Default)]
pub struct SeedContact {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub organization: Option<String>,
    pub tags: BTreeSet<String>,
    pub lists: BTreeMap<u64, SeedStatus>,
    pub fields: BTreeMap<u64, String>,
}

/// A bulk import ActiveCampaign already ran, for `import/info` (and the callbacks in events/).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedImport {
    pub batch_id: String,
    pub status: String,
    pub contacts: usize,
}

/// The statuses `import/info` reports besides `false`.
const IMPORT_STATUSES: [&str; 6] = [
    "waiting",
    "claimed",
    "active",
    "completed",
    "failed",
    "interrupted",
];

/// Lists, fields, contacts and imports the sandbox starts with.
#[derive(Debug, Clone, Default)]
pub struct Seed {
    pub lists: Vec<SeedList>,
    pub fields: Vec<SeedField>,
    pub contacts: Vec<SeedContact>,
    pub imports: Vec<SeedImport>,
}

#[derive(Debug, Error)]
pub enum SeedError {
    #[error("seed file: {0}")]
    Toml(#[from] toml::de::Error),
    #[error("seed file: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    lists: Vec<ListEntry>,
    #[serde(default)]
    fields: Vec<FieldEntry>,
    #[serde(default)]
    contacts: Vec<ContactEntry>,
    #[serde(default)]
    imports: Vec<SeedImport>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEntry {
    id: u64,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldEntry {
    id: u64,
    perstag: String,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactEntry {
    email: String,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    organization: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// List id (a TOML key is text) → status.
    #[serde(default)]
    lists: BTreeMap<String, SeedStatus>,
    /// Field id or `%PERS_TAG%` → value.
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

impl Seed {
    /// `local/sandbox-seed.toml` as compiled in.
    pub fn bundled() -> Self {
        // A test parses the bundled file, so this cannot fail in a built binary.
        Self::from_toml(BUNDLED).unwrap_or_default()
    }

    /// The bundled lists and fields, without its contacts and imports.
    pub fn bundled_account() -> Self {
        Self {
            contacts: Vec::new(),
            imports: Vec::new(),
            ..Self::bundled()
        }
    }

    pub fn from_toml(text: &str) -> Result<Self, SeedError> {
        let file: SeedFile = toml::from_str(text)?;
        let mut seed = Seed::default();
        for list in file.lists {
            if list.id == 0 || seed.list(list.id).is_some() {
                return Err(SeedError::Invalid(format!(
                    "list id {} is zero or repeated",
                    list.id
                )));
            }
            seed.lists.push(SeedList {
                id: list.id,
                name: list.name,
            });
        }
        for field in file.fields {
            let perstag = field.perstag.trim_matches('%').to_ascii_uppercase();
            if field.id == 0 || perstag.is_empty() {
                return Err(SeedError::Invalid(format!(
                    "field {}: a non-zero id and a perstag are required",
                    field.id
                )));
            }
            if seed.field_by_key(&field.id.to_string()).is_some()
                || seed.field_by_key(&format!("%{perstag}%")).is_some()
            {
                return Err(SeedError::Invalid(format!(
                    "field {} (%{perstag}%) is repeated",
                    field.id
                )));
            }
            seed.fields.push(SeedField {
                id: field.id,
                title: field.title.unwrap_or_else(|| perstag.clone()),
                perstag,
            });
        }
        for entry in file.contacts {
            let contact = seed.contact(entry)?;
            seed.contacts.push(contact);
        }
        for import in file.imports {
            if import.batch_id.trim().is_empty()
                || !IMPORT_STATUSES.contains(&import.status.as_str())
            {
                return Err(SeedError::Invalid(format!(
                    "import {:?}: a batch_id and a status ({}) are required",
                    import.batch_id,
                    IMPORT_STATUSES.join(", ")
                )));
            }
            seed.imports.push(import);
        }
        Ok(seed)
    }

    pub fn list(&self, id: u64) -> Option<&SeedList> {
        self.lists.iter().find(|l| l.id == id)
    }

    /// The field a `field[KEY,0]` key names: `KEY` is a numeric id or `%PERS_TAG%`
    /// (personalization tags match without regard to case, as ActiveCampaign's do).
    pub fn field_by_key(&self, key: &str) -> Option<&SeedField> {
        if let Ok(id) = key.trim().parse::<u64>() {
            return self.fields.iter().find(|f| f.id == id);
        }
        let tag = key.trim().strip_prefix('%')?.strip_suffix('%')?;
        self.fields
            .iter()
            .find(|f| f.perstag.eq_ignore_ascii_case(tag))
    }

    fn contact(&self, entry: ContactEntry) -> Result<SeedContact, SeedError> {
        let email = normalise_email(&entry.email)
            .ok_or_else(|| SeedError::Invalid(format!("{:?} is not an email", entry.email)))?;
        let mut lists = BTreeMap::new();
        for (id, status) in entry.lists {
            let id = id
                .parse::<u64>()
                .ok()
                .filter(|id| self.list(*id).is_some())
                .ok_or_else(|| SeedError::Invalid(format!("{email}: no list {id}")))?;
            lists.insert(id, status);
        }
        let mut fields = BTreeMap::new();
        for (key, value) in entry.fields {
            let field = self
                .field_by_key(&key)
                .ok_or_else(|| SeedError::Invalid(format!("{email}: no field {key}")))?;
            fields.insert(field.id, value);
        }
        Ok(SeedContact {
            email,
            first_name: entry.first_name,
            last_name: entry.last_name,
            phone: entry.phone,
            organization: entry.organization,
            tags: entry.tags.into_iter().collect(),
            lists,
            fields,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_seed_parses_and_resolves_fields_by_id_and_tag() {
        let seed = Seed::from_toml(BUNDLED).unwrap();
        assert_eq!(seed.field_by_key("%SIGNUP_PAGE%").map(|f| f.id), Some(2));
        assert_eq!(seed.field_by_key("%signup_page%").map(|f| f.id), Some(2));
        assert_eq!(seed.field_by_key("3").map(|f| f.id), Some(3));
        assert!(seed.field_by_key("99").is_none());
        assert!(
            seed.field_by_key("SIGNUP_PAGE").is_none(),
            "a tag needs its % signs"
        );
        assert!(
            seed.contacts.iter().any(|c| c.email == "mary@example.com"
                && c.lists.get(&1) == Some(&SeedStatus::Unsubscribed))
        );
        assert_eq!(seed.imports[0].status, "completed");
        assert!(Seed::bundled_account().contacts.is_empty());
    }

    #[test]
    fn mistakes_in_a_seed_are_named() {
        let repeated = "[[lists]]\nid = 1\nname = \"a\"\n[[lists]]\nid = 1\nname = \"b\"";
        assert!(
            Seed::from_toml(repeated)
                .unwrap_err()
                .to_string()
                .contains("list id 1")
        );
        let unknown_list = "[[contacts]]\nemail = \"a@example.com\"\nlists = { 7 = \"active\" }";
        assert!(
            Seed::from_toml(unknown_list)
                .unwrap_err()
                .to_string()
                .contains("no list 7")
        );
        let bad_status = "[[lists]]\nid = 1\nname = \"a\"\n[[contacts]]\nemail = \"a@example.com\"\nlists = { 1 = \"gone\" }";
        assert!(Seed::from_toml(bad_status).is_err());
        assert!(Seed::from_toml("[[contacts]]\nemail = \"nope\"").is_err());
        assert!(
            Seed::from_toml("colour = 1").is_err(),
            "unknown keys are refused"
        );
    }
}
