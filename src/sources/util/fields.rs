//! Field recognition for form-like senders: a contact found in flat fields by their common
//! names (`email`, `E-mail`, `First Name`, `tel`, `company`, a `newsletter` checkbox...).

use serde_json::{Map, Value};

use crate::submission::{ContactFields, first_email_like, is_affirmative, value_as_text};

// Recognised field names, compared after folding accents, lower-casing and dropping everything
// but letters and digits, so `E-mail`, `your_email`, `Email Address` and `Téléphone` all
// match. Besides English: German, French, Spanish, Portuguese, Italian and Dutch, the languages
// of most of the shops and forms people run here.
const EMAIL_KEYS: &[&str] = &[
    "email",
    "emailaddress",
    "youremail",
    "mail",
    "contactemail",
    // de
    "emailadresse",
    "mailadresse",
    "ihreemail",
    // fr
    "courriel",
    "adresseemail",
    "adressemail",
    "adressecourriel",
    "votreemail",
    // es
    "correo",
    "correoelectronico",
    "direcciondecorreo",
    "direcciondecorreoelectronico",
    "tucorreo",
    // pt
    "enderecodeemail",
    "seuemail",
    // it
    "indirizzoemail",
    "postaelettronica",
    "latuaemail",
    // nl
    "emailadres",
    "mailadres",
    "jouwemail",
];
const FIRST_NAME_KEYS: &[&str] = &[
    "firstname",
    "fname",
    "first",
    "givenname",
    "forename",
    "vorname",
    "prenom",
    "primernombre",
    "primeironome",
    "voornaam",
];
const LAST_NAME_KEYS: &[&str] = &[
    "lastname",
    "lname",
    "last",
    "surname",
    "familyname",
    "nachname",
    "familienname",
    "nomdefamille",
    "apellido",
    "apellidos",
    "sobrenome",
    "cognome",
    "achternaam",
    "familienaam",
];
const FULL_NAME_KEYS: &[&str] = &[
    "name",
    "fullname",
    "yourname",
    "contactname",
    "vollstandigername",
    "ihrname",
    "nomcomplet",
    "votrenom",
    "nombrecompleto",
    "tunombre",
    "nomecompleto",
    "seunome",
    "nomeecognome",
    "naam",
    "volledigenaam",
];
/// A word that is the first name beside a last-name field, and the whole name alone: Spanish
/// `Nombre`, Portuguese and Italian `Nome`.
const FIRST_OR_FULL_NAME_KEYS: &[&str] = &["nombre", "nome"];
/// French `Nom`: the last name beside `Prénom`, the whole name alone.
const LAST_OR_FULL_NAME_KEYS: &[&str] = &["nom"];
const PHONE_KEYS: &[&str] = &[
    "phone",
    "tel",
    "telephone",
    "phonenumber",
    "mobile",
    "yourphone",
    "telefon",
    "telefonnummer",
    "handy",
    "mobilnummer",
    "numerodetelephone",
    "portable",
    "telefono",
    "numerodetelefono",
    "movil",
    "celular",
    "telefone",
    "telemovel",
    "cellulare",
    "numeroditelefono",
    "telefoon",
    "telefoonnummer",
    "mobiel",
    "mobielnummer",
];
const ORGANIZATION_KEYS: &[&str] = &[
    "company",
    "organization",
    "organisation",
    "org",
    "companyname",
    "yourcompany",
    "firma",
    "unternehmen",
    "firmenname",
    "entreprise",
    "societe",
    "nomdelentreprise",
    "empresa",
    "compania",
    "organizacion",
    "nombredelaempresa",
    "organizacao",
    "nomedaempresa",
    "azienda",
    "societa",
    "ditta",
    "nomeazienda",
    "bedrijf",
    "bedrijfsnaam",
    "organisatie",
];
const CONSENT_KEYS: &[&str] = &[
    "consent",
    "marketingconsent",
    "optin",
    "newsletter",
    "subscribe",
    "acceptsmarketing",
    "gdpr",
    "einwilligung",
    "zustimmung",
    "newsletterabonnieren",
    "consentement",
    "infolettre",
    "consentimiento",
    "boletin",
    "suscribirse",
    "consentimento",
    "assinarnewsletter",
    "consenso",
    "iscriviti",
    "toestemming",
    "nieuwsbrief",
    "aanmelden",
];

/// Finds a contact in flat form fields by their common names (`email`, `E-mail`,
/// `First Name`, `tel`, `company`, `Vorname`, `prénom`, a `newsletter` checkbox...). Form-like
/// senders reuse it.
pub fn recognise_fields(payload: &Value) -> (ContactFields, Option<bool>) {
    let empty = Map::new();
    let fields = &keyed(payload.as_object().unwrap_or(&empty));
    let mut first_name = find(fields, FIRST_NAME_KEYS);
    let mut last_name = find(fields, LAST_NAME_KEYS);
    let mut full_name = find(fields, FULL_NAME_KEYS);
    // `Nombre` beside `Apellidos` is the first name; alone, it is the whole name.
    if let Some(name) = find(fields, FIRST_OR_FULL_NAME_KEYS) {
        match (&first_name, &last_name) {
            (None, Some(_)) => first_name = Some(name),
            (None, None) => full_name = full_name.or(Some(name)),
            _ => {}
        }
    }
    if let Some(name) = find(fields, LAST_OR_FULL_NAME_KEYS) {
        match (&first_name, &last_name) {
            (Some(_), None) => last_name = Some(name),
            (None, None) => full_name = full_name.or(Some(name)),
            _ => {}
        }
    }
    let contact = ContactFields {
        email: find(fields, EMAIL_KEYS),
        first_name,
        last_name,
        full_name,
        phone: find(fields, PHONE_KEYS),
        // `Firma` is a company in German, a signature in Spanish and Italian: a signature
        // pad's image (a URL, a data URI) is no organisation.
        organization: find(fields, ORGANIZATION_KEYS).filter(|o| {
            let o = o.trim_start().to_ascii_lowercase();
            !(o.starts_with("http://") || o.starts_with("https://") || o.starts_with("data:"))
        }),
        ip4: None,
    };
    let consent = find_value(fields, CONSENT_KEYS).map(is_affirmative);
    (contact, consent)
}

/// [`recognise_fields`] for senders whose keys are chosen by the site owner (WPForms, Elementor
/// labels, Google Forms question titles): when no key is named like an email, the first value
/// that looks like an email address is the email.
pub fn recognise_fields_any_email(payload: &Value) -> (ContactFields, Option<bool>) {
    let (mut contact, consent) = recognise_fields(payload);
    if contact.email.is_none() {
        contact.email = payload
            .as_object()
            .and_then(|fields| first_email_like(fields.values()));
    }
    (contact, consent)
}

/// `Téléphone` → `telephone`, `E-Mail-Adresse` → `emailadresse`: accents folded (NFD without
/// its combining marks), lower case, letters and digits only.
fn normalise_key(key: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    use unicode_normalization::char::is_combining_mark;
    key.nfd()
        .filter(|c| !is_combining_mark(*c))
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A form's fields with their keys normalised once (a large form has thousands of keys, and
/// every name list is matched against all of them).
type Keyed<'a> = Vec<(String, &'a Value)>;

fn keyed(fields: &Map<String, Value>) -> Keyed<'_> {
    fields.iter().map(|(k, v)| (normalise_key(k), v)).collect()
}

fn find_value<'a>(fields: &Keyed<'a>, names: &[&str]) -> Option<&'a Value> {
    // Preference follows the order of `names`, not the order of the form.
    names.iter().find_map(|name| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| *value)
    })
}

fn find(fields: &Keyed<'_>, names: &[&str]) -> Option<String> {
    let value = find_value(fields, names)?;
    match value {
        // A repeated field: the first non-empty value.
        Value::Array(items) => items.iter().find_map(value_as_text),
        other => value_as_text(other),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn contact(fields: Value) -> (ContactFields, Option<bool>) {
        recognise_fields(&fields)
    }

    #[test]
    fn labels_in_the_languages_of_the_forms_people_run() {
        let forms = [
            json!({"E-Mail-Adresse": "a@x.de", "Vorname": "Anna", "Nachname": "Schmidt",
                   "Telefonnummer": "+49 30 1234", "Firma": "Schmidt GmbH", "Einwilligung": "ja"}),
            json!({"Adresse e-mail": "a@x.fr", "Prénom": "Anna", "Nom": "Schmidt",
                   "Téléphone": "+33 1 2345", "Entreprise": "Schmidt SA", "Consentement": "on"}),
            json!({"Correo electrónico": "a@x.es", "Nombre": "Anna", "Apellidos": "Schmidt",
                   "Teléfono": "+34 91 234", "Empresa": "Schmidt SL", "Consentimiento": "true"}),
            json!({"Endereço de e-mail": "a@x.pt", "Nome": "Anna", "Sobrenome": "Schmidt",
                   "Telefone": "+351 21 234", "Empresa": "Schmidt Lda", "Consentimento": "1"}),
            json!({"Indirizzo email": "a@x.it", "Nome": "Anna", "Cognome": "Schmidt",
                   "Cellulare": "+39 06 234", "Azienda": "Schmidt Srl", "Consenso": "yes"}),
            json!({"E-mailadres": "a@x.nl", "Voornaam": "Anna", "Achternaam": "Schmidt",
                   "Telefoonnummer": "+31 20 234", "Bedrijfsnaam": "Schmidt BV", "Nieuwsbrief": "on"}),
        ];
        for form in forms {
            let (c, consent) = contact(form.clone());
            assert!(
                c.email.as_deref().is_some_and(|e| e.starts_with("a@x.")),
                "{form}"
            );
            assert_eq!(c.first_name.as_deref(), Some("Anna"), "{form}");
            assert_eq!(c.last_name.as_deref(), Some("Schmidt"), "{form}");
            assert!(c.phone.is_some() && c.organization.is_some(), "{form}");
            assert_eq!(consent, Some(true), "{form}");
        }
    }

    #[test]
    fn a_word_for_name_alone_is_the_whole_name() {
        for key in [
            "Nombre",
            "Nome",
            "Nom",
            "Naam",
            "Nom complet",
            "Vollständiger Name",
        ] {
            let (c, _) = contact(json!({"email": "a@x.com", key: "Ana Maria Silva"}));
            assert_eq!(c.full_name.as_deref(), Some("Ana Maria Silva"), "{key}");
            assert_eq!((c.first_name, c.last_name), (None, None), "{key}");
        }
        // A Spanish or Italian `Firma` is a signature pad's image, no company.
        let (c, _) =
            contact(json!({"Correo": "a@x.es", "Firma": "https://forms.example/sig/1.png"}));
        assert_eq!(c.organization, None);
        assert_eq!(
            contact(json!({"Firma": "Schmidt GmbH"}))
                .0
                .organization
                .as_deref(),
            Some("Schmidt GmbH")
        );
        assert_eq!(
            recognise_fields(&json!({"email": "a@x.es", "consent": "SÍ"})).1,
            Some(true)
        );
        // French `Nom` beside `Prénom` is the last name; accents and case do not matter.
        let (c, _) = contact(json!({"PRÉNOM": "Anne", "nom": "Dupont"}));
        assert_eq!(c.first_name.as_deref(), Some("Anne"));
        assert_eq!(c.last_name.as_deref(), Some("Dupont"));
    }
}
