//! The address book: contacts (name, address, groups) kept with the
//! account, offered while writing (a `<datalist>`, so no script), a
//! group name in To/Cc/Bcc standing for its members, and vCard (RFC 6350)
//! import and export.

use super::pages::Frame;
use super::{Shared, User, WebError, blocking};
use axum::extract::{Multipart, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

const KEY: &str = "webmail/contacts";
/// Contacts an address book holds.
pub const MAX_CONTACTS: usize = 5_000;

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq)]
#[serde(default)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
}

impl Contact {
    /// `Name <a@b>` as written into an address field.
    pub fn mailbox(&self) -> String {
        if self.name.is_empty() {
            self.email.clone()
        } else {
            let name = self.name.replace(['<', '>', ',', ';', '"'], " ");
            let name: Vec<&str> = name.split_whitespace().collect();
            format!("{} <{}>", name.join(" "), self.email)
        }
    }
}

pub fn load(store: &dyn crate::store::MailStore, account: &str) -> Result<Vec<Contact>, WebError> {
    let raw = store.account_data(account, KEY)?;
    Ok(raw
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default())
}

fn save(
    store: &dyn crate::store::MailStore,
    account: &str,
    contacts: &[Contact],
) -> Result<(), WebError> {
    let bytes = serde_json::to_vec(contacts).map_err(|e| WebError::Unavailable(e.to_string()))?;
    store.set_account_data(account, KEY, Some(&bytes))?;
    Ok(())
}

/// The group names in use, sorted.
pub fn groups(contacts: &[Contact]) -> Vec<String> {
    let mut all: Vec<String> = contacts
        .iter()
        .flat_map(|c| c.groups.iter().cloned())
        .collect();
    all.sort_by_key(|g| g.to_lowercase());
    all.dedup();
    all
}

/// Groups one contact may be in.
const MAX_GROUPS: usize = 20;

/// Adds (or updates, by address) a contact; `false` when the book is full.
fn upsert(contacts: &mut Vec<Contact>, mut contact: Contact) -> bool {
    contact.groups.truncate(MAX_GROUPS);
    if let Some(old) = contacts
        .iter_mut()
        .find(|c| c.email.eq_ignore_ascii_case(&contact.email))
    {
        if !contact.name.is_empty() {
            old.name = contact.name;
        }
        for g in contact.groups {
            if !old.groups.contains(&g) && old.groups.len() < MAX_GROUPS {
                old.groups.push(g);
            }
        }
        return true;
    }
    if contacts.len() >= MAX_CONTACTS {
        return false;
    }
    contacts.push(contact);
    true
}

/// vCards (3.0 or 4.0) → contacts: `FN`, each `EMAIL`, `CATEGORIES`.
/// Folded lines are unfolded; other properties are ignored.
pub fn parse_vcards(text: &str) -> Vec<Contact> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix([' ', '\t']) {
            Some(rest) if !lines.is_empty() => {
                if let Some(last) = lines.last_mut() {
                    last.push_str(rest);
                }
            }
            _ => lines.push(line.to_string()),
        }
    }
    let mut out = Vec::new();
    let (mut name, mut emails, mut groups) = (String::new(), Vec::new(), Vec::new());
    for line in lines {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let prop = key
            .split(';')
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let prop = prop.rsplit('.').next().unwrap_or_default().to_string();
        let raw = value.trim();
        let value = unescape(raw);
        match prop.as_str() {
            "BEGIN" => (name, emails, groups) = (String::new(), Vec::new(), Vec::new()),
            "FN" => name = crate::rfc5322::one_line(&value, 200),
            "EMAIL" if value.contains('@') && value.len() <= 320 => {
                emails.push(value.trim_start_matches("mailto:").to_string())
            }
            "CATEGORIES" => {
                // Split at the commas that are not escaped, then unescape.
                groups = split_unescaped(raw)
                    .iter()
                    .map(|g| crate::rfc5322::one_line(unescape(g).trim(), 100))
                    .filter(|g| !g.is_empty())
                    .collect()
            }
            "END" => {
                for email in emails.drain(..) {
                    out.push(Contact {
                        name: name.clone(),
                        email,
                        groups: groups.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// `a,b\,c` → `a`, `b\,c`.
fn split_unescaped(value: &str) -> Vec<String> {
    let (mut parts, mut current, mut escaped) = (Vec::new(), String::new(), false);
    for c in value.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == ',' {
            parts.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    parts.push(current);
    parts
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace(';', "\\;")
        .replace('\n', "\\n")
}

/// Contacts → vCard 4.0, CRLF line ends.
pub fn to_vcards(contacts: &[Contact]) -> String {
    let mut out = String::new();
    for c in contacts {
        out.push_str("BEGIN:VCARD\r\nVERSION:4.0\r\n");
        let name = if c.name.is_empty() { &c.email } else { &c.name };
        out.push_str(&format!(
            "FN:{}\r\nEMAIL:{}\r\n",
            escape(name),
            escape(&c.email)
        ));
        if !c.groups.is_empty() {
            let groups: Vec<String> = c.groups.iter().map(|g| escape(g)).collect();
            out.push_str(&format!("CATEGORIES:{}\r\n", groups.join(",")));
        }
        out.push_str("END:VCARD\r\n");
    }
    out
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ContactsQuery {
    group: String,
    notice: String,
}

/// GET /contacts.
pub async fn page(
    State(web): State<Shared>,
    user: User,
    Query(q): Query<ContactsQuery>,
) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let all = load(web2.store.as_ref(), user.account())?;
        let groups = groups(&all);
        let shown: Vec<(usize, Contact)> = all
            .into_iter()
            .enumerate()
            .filter(|(_, c)| q.group.is_empty() || c.groups.contains(&q.group))
            .collect();
        let mut frame = Frame::new(web2.store.as_ref(), &user, "")?;
        frame.notice = crate::rfc5322::one_line(&q.notice, 200);
        let ctx = frame
            .with(context! { title => "Contacts", contacts => shown, groups, group => q.group });
        web2.pages.render("contacts.html", ctx)
    })
    .await
}

/// POST /contacts (multipart, for the vCard file): add, delete, import.
pub async fn action(
    State(web): State<Shared>,
    user: User,
    mut form: Multipart,
) -> Result<Response, WebError> {
    let mut fields = std::collections::HashMap::new();
    let mut file = Vec::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| WebError::BadRequest(format!("The form could not be read: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let data = field
            .bytes()
            .await
            .map_err(|e| WebError::BadRequest(format!("The upload failed: {e}")))?;
        if name == "vcard" {
            file = data.to_vec();
        } else {
            fields.insert(name, String::from_utf8_lossy(&data).into_owned());
        }
    }
    let get = move |k: &str| fields.get(k).map_or("", String::as_str).to_string();
    user.check_csrf(&get("csrf"))?;
    let web2 = web.clone();
    let notice = blocking(move || {
        let store = web2.store.as_ref();
        let mut contacts = load(store, user.account())?;
        let notice = match get("action").as_str() {
            "add" => {
                let email = get("email").trim().to_string();
                if crate::address::Address::parse(&email).is_err() || !email.contains('@') {
                    return Ok(format!("{email} is not an address."));
                }
                let groups = get("groups")
                    .split(',')
                    .map(|g| crate::rfc5322::one_line(g.trim(), 100))
                    .filter(|g| !g.is_empty())
                    .collect();
                let contact = Contact {
                    name: crate::rfc5322::one_line(get("name").trim(), 200),
                    email,
                    groups,
                };
                if !upsert(&mut contacts, contact) {
                    return Ok(format!(
                        "The address book is full ({MAX_CONTACTS} contacts)."
                    ));
                }
                "Contact saved.".to_string()
            }
            "import" => {
                let found = parse_vcards(&String::from_utf8_lossy(&file));
                let n = found.len();
                let kept = found
                    .into_iter()
                    .filter(|c| upsert(&mut contacts, c.clone()))
                    .count();
                format!("{kept} of {n} contacts imported.")
            }
            other => match other
                .strip_prefix("delete-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(i) if i < contacts.len() => {
                    contacts.remove(i);
                    "Contact deleted.".to_string()
                }
                _ => return Err(WebError::BadRequest("Unknown action.".into())),
            },
        };
        save(store, user.account(), &contacts)?;
        Ok(notice)
    })
    .await?;
    Ok(Redirect::to(&format!(
        "/contacts?notice={}",
        super::mailbox::url(&notice)
    ))
    .into_response())
}

/// GET /contacts/export.vcf.
pub async fn export(State(web): State<Shared>, user: User) -> Result<Response, WebError> {
    let web2 = web.clone();
    blocking(move || {
        let contacts = load(web2.store.as_ref(), user.account())?;
        Ok((
            [
                (header::CONTENT_TYPE, "text/vcard; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"contacts.vcf\"",
                ),
            ],
            to_vcards(&contacts),
        )
            .into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vcards_round_trip() {
        let text = "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Budi\\, Santoso\r\nEMAIL;TYPE=work:budi@kantor.example\r\nEMAIL:budi@rumah.example\r\nCATEGORIES:Kantor,Futsal\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nFN:Siti\r\nitem1.EMAIL:si\r\n ti@example.org\r\nEND:VCARD\r\n";
        let contacts = parse_vcards(text);
        assert_eq!(contacts.len(), 3, "{contacts:?}");
        assert_eq!(contacts[0].name, "Budi, Santoso");
        assert_eq!(contacts[0].groups, ["Kantor", "Futsal"]);
        assert_eq!(contacts[2].email, "siti@example.org");
        assert_eq!(parse_vcards(&to_vcards(&contacts)), contacts);
        assert_eq!(contacts[0].mailbox(), "Budi Santoso <budi@kantor.example>");
        let tricky = parse_vcards(
            "BEGIN:VCARD\r\nFN:X\r\nEMAIL:x@y.example\r\nCATEGORIES:Sales\\, East,Ops\r\nEND:VCARD\r\n",
        );
        assert_eq!(tricky[0].groups, ["Sales, East", "Ops"]);
    }
}
