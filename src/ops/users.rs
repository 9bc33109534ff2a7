//! `imgvault user add|passwd|list|delete`: account administration on a stopped server's file, for
//! the admin who forgot a password or needs an account without the web form.

use super::{OpsError, Outcome, open_existing, read_password};
use crate::cli::UserCommand;
use crate::domain::{Email, Password, UserId, Username};
use crate::store::records::UserRecord;
use crate::store::{Store, StoreError};
use crate::{clock, secrets};

pub fn run(command: UserCommand) -> Result<Outcome, OpsError> {
    match command {
        UserCommand::Add { name, email, data } => {
            let store = open_existing(&data.data)?;
            add(&store, &name, &email)
        }
        UserCommand::Passwd { name, data } => {
            let store = open_existing(&data.data)?;
            passwd(&store, &name)
        }
        UserCommand::List { data } => list(&open_existing(&data.data)?),
        UserCommand::Delete {
            name,
            delete_images,
            data,
        } => {
            let store = open_existing(&data.data)?;
            delete(&store, &name, delete_images)
        }
    }
}

fn invalid(e: crate::domain::Invalid) -> OpsError {
    OpsError::Refused(e.0.to_string())
}

fn internal(e: StoreError) -> OpsError {
    OpsError::Refused(format!("the data file: {e}"))
}

fn find(store: &Store, name: &str) -> Result<UserRecord, OpsError> {
    store
        .user_by_username(&name.trim().to_lowercase())
        .map_err(internal)?
        .ok_or_else(|| {
            OpsError::Refused(format!(
                "there is no user {name:?} (see `imgvault user list`)"
            ))
        })
}

fn new_password(name: &str) -> Result<Password, OpsError> {
    let raw = read_password(&format!("new password for {name}: "), true)?;
    Password::parse(&raw).map_err(invalid)
}

fn add(store: &Store, name: &str, email: &str) -> Result<Outcome, OpsError> {
    let username = Username::parse(name).map_err(invalid)?;
    let email = Email::parse(email).map_err(invalid)?;
    let password = new_password(username.as_str())?;
    let user = UserRecord::new(&username, &email, secrets::hash_password(password.expose()));
    match store.create_user(&user, &username.key(), &email.key()) {
        Ok(()) => {
            println!("created user {} ({})", user.username, user.user_id);
            Ok(Outcome::Done)
        }
        Err(StoreError::Conflict) => Err(OpsError::Refused(format!(
            "the username {} or the email {} is taken",
            username.as_str(),
            email.as_str()
        ))),
        Err(e) => Err(internal(e)),
    }
}

fn passwd(store: &Store, name: &str) -> Result<Outcome, OpsError> {
    let user = find(store, name)?;
    let password = new_password(&user.username)?;
    let hash = secrets::hash_password(password.expose());
    let ended = store
        .set_password(&user.user_id, &hash)
        .map_err(internal)?
        .unwrap_or(0);
    println!(
        "password of {} changed; {ended} sessions ended",
        user.username
    );
    Ok(Outcome::Done)
}

fn list(store: &Store) -> Result<Outcome, OpsError> {
    let users = store.users().map_err(internal)?;
    println!(
        "{:<20}  {:<36}  {:<30}  {:>7}  {:<19}  last login",
        "username", "user id", "email", "images", "created"
    );
    for user in users {
        let images = store.user_image_count(&user.user_id).map_err(internal)?;
        println!(
            "{:<20}  {:<36}  {:<30}  {:>7}  {:<19}  {}",
            user.username,
            user.user_id,
            user.email,
            images,
            clock::display(user.created_at),
            user.last_login
                .map_or_else(|| "never".into(), clock::display)
        );
    }
    Ok(Outcome::Done)
}

fn delete(store: &Store, name: &str, delete_images: bool) -> Result<Outcome, OpsError> {
    let user = find(store, name)?;
    if user.username.eq_ignore_ascii_case("admin") {
        return Err(OpsError::Refused(
            "admin cannot be deleted: it owns the uploads sent without a login".into(),
        ));
    }
    let images = store.user_image_count(&user.user_id).map_err(internal)?;
    if images > 0 && !delete_images {
        return Err(OpsError::Refused(format!(
            "{} has {images} images; export them first if you want them (`imgvault export`), \
             then delete with --delete-images",
            user.username
        )));
    }
    let removed = store
        .delete_user(&user.user_id)
        .map_err(internal)?
        .unwrap_or(0);
    println!("deleted user {} and {removed} images", user.username);
    Ok(Outcome::Done)
}

/// Creates the `admin` account on a new data file and returns its user id.
pub(crate) fn ensure_admin(store: &Store, password: Option<String>) -> Result<UserId, StoreError> {
    if let Some(admin) = store.user_by_username("admin")? {
        return Ok(admin.user_id);
    }
    let generated = password.is_none();
    let password = password.unwrap_or_else(secrets::random_password);
    let admin = UserRecord {
        user_id: format!(
            "default-user-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        )
        .into(),
        username: "admin".into(),
        email: "admin@local.com".into(),
        password_hash: secrets::hash_password(&password),
        created_at: clock::now(),
        last_login: None,
        cloud_sync_enabled: false,
    };
    store.create_user(&admin, "admin", "admin@local.com")?;
    if generated {
        println!("created user 'admin' with password: {password}");
        println!("(shown once; set IMGVAULT_ADMIN_PASSWORD before the first start to choose it)");
    } else {
        tracing::info!("created user 'admin' with the password from IMGVAULT_ADMIN_PASSWORD");
    }
    Ok(admin.user_id)
}
