//! Torii's user ids ↔ toriid's uuids (docs/torii.md, "Torii's user ids").

use torii_core::UserId;
use toriid_client::DEFAULT_TENANT;
use uuid::Uuid;

/// The namespace of the UUIDv5 rule: UUIDv5(URL namespace,
/// `urn:torii:sqlite-migrate`), the same as `torii migrate` and the C++
/// `torii::UserIdFromToriiId` use.
pub const TORII_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6af69e92_7b68_53eb_b1a6_0f7f935d8f4b);

/// The metadata key that keeps a user's Torii id.
pub const TORII_ID_KEY: &str = "torii_id";

/// The metadata key that keeps, on a session, its user's Torii id.
pub const SESSION_USER_KEY: &str = "torii_user_id";

/// The canonical lower-case form of a uuid in 8-4-4-4-12 form (any case).
fn canonical_uuid(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let ok = match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        };
        if !ok {
            return None;
        }
    }
    Some(s.to_ascii_lowercase())
}

/// The toriid uuid of a Torii user id: a uuid as is (lower-cased), any other
/// id UUIDv5([`TORII_ID_NAMESPACE`], id).
///
/// ```
/// use torii_core::UserId;
/// use torii_storage_toriid::toriid_user_id;
/// let a = toriid_user_id(&UserId::new("usr_3yQBbNQ4E1WK6xqJ5"));
/// assert_eq!(a, toriid_user_id(&UserId::new("usr_3yQBbNQ4E1WK6xqJ5")));
/// let u = "6AF69E92-7B68-53EB-B1A6-0F7F935D8F4B";
/// assert_eq!(toriid_user_id(&UserId::new(u)), u.to_lowercase());
/// ```
pub fn toriid_user_id(id: &UserId) -> String {
    canonical_uuid(id.as_str()).unwrap_or_else(|| {
        Uuid::new_v5(&TORII_ID_NAMESPACE, id.as_str().as_bytes())
            .hyphenated()
            .to_string()
    })
}

/// The toriid uuid of a Torii user id in `tenant` (`None`: the default
/// tenant). In the default tenant it is [`toriid_user_id`]; in any other
/// tenant every id, a uuid too, becomes UUIDv5([`TORII_ID_NAMESPACE`],
/// `tenant + "/" + id`) (a uuid lower-cased first), so that the same Torii
/// id in two tenants names two users (`users.id` is unique across
/// tenants). The same rule as the C++ `torii::UserIdFromToriiId(id, tenant)`
/// and `torii migrate --tenant`.
///
/// ```
/// use torii_core::UserId;
/// use torii_storage_toriid::{toriid_user_id, toriid_user_id_in};
/// let id = UserId::new("usr_3yQBbNQ4E1WK6xqJ5");
/// assert_eq!(toriid_user_id_in(None, &id), toriid_user_id(&id));
/// assert_eq!(toriid_user_id_in(Some("default"), &id), toriid_user_id(&id));
/// assert_eq!(toriid_user_id_in(Some("acme"), &id), "e99616d9-cb80-547d-b235-37f6d65fb67d");
/// ```
pub fn toriid_user_id_in(tenant: Option<&str>, id: &UserId) -> String {
    match tenant {
        Some(t) if t != DEFAULT_TENANT => {
            let id = canonical_uuid(id.as_str()).unwrap_or_else(|| id.as_str().to_string());
            Uuid::new_v5(&TORII_ID_NAMESPACE, format!("{t}/{id}").as_bytes())
                .hyphenated()
                .to_string()
        }
        _ => toriid_user_id(id),
    }
}

/// Whether Torii's id must be kept beside the uuid to be restored (it is
/// not itself the uuid).
pub(crate) fn needs_keeping(id: &UserId) -> bool {
    canonical_uuid(id.as_str()).is_none()
}

/// [`needs_keeping`] in `tenant`: outside the default tenant the uuid is
/// never Torii's id.
pub(crate) fn needs_keeping_in(tenant: Option<&str>, id: &UserId) -> bool {
    tenant.is_some_and(|t| t != DEFAULT_TENANT) || needs_keeping(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_is_the_documented_one() {
        let ns = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:torii:sqlite-migrate");
        assert_eq!(ns, TORII_ID_NAMESPACE);
        assert!(needs_keeping(&UserId::new("usr_abc")));
        assert!(!needs_keeping(&UserId::new(
            "6af69e92-7b68-53eb-b1a6-0f7f935d8f4b"
        )));
    }

    /// The literals are Python's uuid.uuid5 of the same names; the C++
    /// `TypesTest.ToriiIdsMapPerTenant` holds them too.
    #[test]
    fn ids_map_per_tenant() {
        let usr = UserId::new("usr_3yQBbNQ4E1WK6xqJ5");
        assert_eq!(toriid_user_id(&usr), "e6d48606-e9dc-542f-abb0-e60a709a635f");
        assert_eq!(
            toriid_user_id_in(Some("acme"), &usr),
            "e99616d9-cb80-547d-b235-37f6d65fb67d"
        );
        assert_ne!(
            toriid_user_id_in(Some("acme"), &usr),
            toriid_user_id_in(Some("beta"), &usr)
        );
        let upper = UserId::new("9F1C2B3A-0000-4000-8000-00000000000A");
        assert_eq!(
            toriid_user_id_in(None, &upper),
            "9f1c2b3a-0000-4000-8000-00000000000a"
        );
        assert_eq!(
            toriid_user_id_in(Some("acme"), &upper),
            "909c7c3e-7a53-52a0-8f8d-665c1066a279"
        );
        assert!(!needs_keeping_in(Some("default"), &upper));
        assert!(needs_keeping_in(Some("acme"), &upper));
        assert!(needs_keeping_in(None, &usr));
    }
}
