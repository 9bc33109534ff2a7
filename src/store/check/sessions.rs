//! Sessions and sync records: every session, hub session and hub sync belongs to a user (kept by
//! `store::sessions` and `store::sync`).

use super::*;

pub(super) fn check_sessions(
    tx: &ReadTransaction,
    users: &HashMap<String, Option<UserRecord>>,
    report: &mut CheckReport,
    out: &mut Findings,
) -> Result<()> {
    let sessions = tx.open_table(SESSIONS)?;
    report.sessions = sessions.len()?;
    let mut kept = HashSet::new();
    for entry in sessions.iter()? {
        let (hash, raw) = entry?;
        let hash = *hash.value();
        match SessionRecord::decode(raw.value()) {
            Ok(s) if users.contains_key(s.user_id.as_str()) => {
                kept.insert(hash);
            }
            Ok(s) => out.found(
                format!(
                    "a session belongs to user {}, who does not exist",
                    s.user_id
                ),
                Some(Fix::Session(hash)),
            ),
            Err(e) => out.found(format!("a session: {e}"), Some(Fix::Session(hash))),
        }
    }
    for entry in tx.open_table(HUB_SYNCS)?.iter()? {
        let (user, raw) = entry?;
        let user = user.value().to_string();
        if !users.contains_key(&user) {
            out.found(
                format!("the last hub sync of user {user}, who does not exist"),
                Some(Fix::HubSync(user)),
            );
        } else if let Err(e) = HubSyncRecord::decode(raw.value()) {
            out.found(
                format!("the last hub sync of user {user}: {e}"),
                Some(Fix::HubSync(user)),
            );
        }
    }
    // A hub session lives and ends with the local session it belongs to.
    for entry in tx.open_table(HUB_SESSIONS)?.iter()? {
        let (hash, raw) = entry?;
        let hash = *hash.value();
        if !kept.contains(&hash) {
            out.found(
                "a hub session belongs to no live local session".into(),
                Some(Fix::HubSession(hash)),
            );
        } else if let Err(e) = HubSessionRecord::decode(raw.value()) {
            out.found(format!("a hub session: {e}"), Some(Fix::HubSession(hash)));
        }
    }
    Ok(())
}

/// Each fix removes the record it names.
#[derive(Debug)]
pub(super) enum Fix {
    Session([u8; 32]),
    HubSession([u8; 32]),
    HubSync(String),
}

impl Repair for Fix {
    fn apply(&self, tx: &WriteTransaction) -> Result<()> {
        match self {
            Self::Session(hash) => {
                tx.open_table(SESSIONS)?.remove(hash)?;
            }
            Self::HubSession(hash) => {
                tx.open_table(HUB_SESSIONS)?.remove(hash)?;
            }
            Self::HubSync(user) => {
                tx.open_table(HUB_SYNCS)?.remove(user.as_str())?;
            }
        }
        Ok(())
    }
}
