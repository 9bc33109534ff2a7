//! Users: the per-user image counters, and the name and e-mail indexes (kept by `store::users`
//! and, for the counters, `store::images`).

use super::*;

/// Per-user image counters against the records.
pub(super) fn check_user_counts(
    tx: &ReadTransaction,
    images: &Images,
    out: &mut Findings,
) -> Result<()> {
    let mut counted: BTreeMap<&str, u64> = BTreeMap::new();
    for image in images.records.values().filter(|i| !i.is_trashed()) {
        *counted.entry(image.user_id.as_str()).or_default() += 1;
    }
    let stored: BTreeMap<String, u64> = tx
        .open_table(USER_IMAGE_COUNTS)?
        .iter()?
        .map(|e| e.map(|(k, v)| (k.value().to_string(), v.value())))
        .collect::<std::result::Result<_, _>>()?;
    let fix = images.all_known();
    for (user, &n) in &counted {
        let have = stored.get(*user).copied().unwrap_or(0);
        if have != n {
            out.found(
                format!("image count of user {user} is {have}, but the user has {n} images"),
                fix.then(|| Fix::SetImageCount(user.to_string(), n)),
            );
        }
    }
    for (user, &have) in &stored {
        if !counted.contains_key(user.as_str()) {
            out.found(
                format!("image count of user {user} is {have}, but the user has no images"),
                fix.then(|| Fix::SetImageCount(user.clone(), 0)),
            );
        }
    }
    Ok(())
}
fn string_index(
    tx: &ReadTransaction,
    def: redb::TableDefinition<&str, &str>,
) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for entry in tx.open_table(def)?.iter()? {
        let (k, v) = entry?;
        map.insert(k.value().to_string(), v.value().to_string());
    }
    Ok(map)
}

/// Users and both of their unique indexes. Returns every user id (a record that does not decode
/// still counts as present, so nothing pointing at it is removed).
pub(super) fn check_users(
    tx: &ReadTransaction,
    out: &mut Findings,
) -> Result<HashMap<String, Option<UserRecord>>> {
    let mut users = HashMap::new();
    for entry in tx.open_table(USERS)?.iter()? {
        let (id, raw) = entry?;
        let id = id.value().to_string();
        match UserRecord::decode(raw.value()) {
            Ok(user) => users.insert(id, Some(user)),
            Err(e) => {
                out.unrepairable(format!("user {id}: {e}"));
                users.insert(id, None)
            }
        };
    }
    let usernames = string_index(tx, USERNAMES)?;
    let emails = string_index(tx, EMAILS)?;
    let mut ids: Vec<_> = users.keys().cloned().collect();
    ids.sort();
    for id in &ids {
        let Some(Some(user)) = users.get(id) else {
            continue;
        };
        for (kind, index, key, add) in [
            (
                "username",
                &usernames,
                user.username.to_lowercase(),
                Fix::AddUsername as fn(String, String) -> Fix,
            ),
            ("email", &emails, user.email.to_lowercase(), Fix::AddEmail),
        ] {
            match index.get(&key) {
                Some(owner) if owner == id => {}
                Some(owner) => out.unrepairable(format!(
                    "{kind} {key:?} of user {id} is indexed for user {owner}"
                )),
                None => out.found(
                    format!("{kind} {key:?} of user {id} is missing from its index"),
                    Some(add(key.clone(), id.clone())),
                ),
            }
        }
    }
    for (kind, index, remove) in [
        (
            "username",
            &usernames,
            Fix::RemoveUsername as fn(String) -> Fix,
        ),
        ("email", &emails, Fix::RemoveEmail),
    ] {
        for (key, id) in index {
            let fits = match users.get(id) {
                None => false,
                Some(None) => true,
                Some(Some(user)) => match kind {
                    "username" => user.username.to_lowercase() == *key,
                    _ => user.email.to_lowercase() == *key,
                },
            };
            if !fits {
                out.found(
                    format!(
                        "{kind} index entry {key:?} points at user {id}, who has no such {kind}"
                    ),
                    Some(remove(key.clone())),
                );
            }
        }
    }
    Ok(users)
}

#[derive(Debug)]
pub(super) enum Fix {
    /// Zero removes the counter, as image deletion does.
    SetImageCount(String, u64),
    AddUsername(String, String),
    RemoveUsername(String),
    AddEmail(String, String),
    RemoveEmail(String),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::SetImageCount(user, 0) => {
                tx.open_table(USER_IMAGE_COUNTS)?.remove(user.as_str())?;
            }
            Self::SetImageCount(user, n) => {
                tx.open_table(USER_IMAGE_COUNTS)?
                    .insert(user.as_str(), *n)?;
            }
            Self::AddUsername(key, id) => {
                tx.open_table(USERNAMES)?
                    .insert(key.as_str(), id.as_str())?;
            }
            Self::RemoveUsername(key) => {
                tx.open_table(USERNAMES)?.remove(key.as_str())?;
            }
            Self::AddEmail(key, id) => {
                tx.open_table(EMAILS)?.insert(key.as_str(), id.as_str())?;
            }
            Self::RemoveEmail(key) => {
                tx.open_table(EMAILS)?.remove(key.as_str())?;
            }
        }
        Ok(())
    }
}
