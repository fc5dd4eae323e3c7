//! Email addresses as ActiveCampaign matches contacts by them: a leaf every stage uses.

/// Longest email address SMTP allows.
const MAX_EMAIL_CHARS: usize = 254;

/// Lower-cases and checks an email address: one `@`, a local part, a dotted domain.
/// ActiveCampaign matches contacts by email, so `Ada@X.com` and `ada@x.com` are one contact.
pub fn normalise_email(raw: &str) -> Option<String> {
    let email = raw.trim().trim_start_matches("mailto:").to_lowercase();
    if email.chars().count() > MAX_EMAIL_CHARS
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (local, domain) = email.split_once('@')?;
    // An internationalised domain is sent in its ASCII (punycode) form, so `Bücher.de` and
    // `xn--bcher-kva.de` are one contact; a domain IDNA refuses is no address.
    let domain = if domain.is_ascii() {
        domain.to_string()
    } else {
        idna::domain_to_ascii(domain).ok()?
    };
    let email = format!("{local}@{domain}");
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    (!local.is_empty() && domain_ok && email.chars().count() <= MAX_EMAIL_CHARS).then_some(email)
}
