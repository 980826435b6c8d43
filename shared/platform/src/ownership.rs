//! The DynamoDB partitions that belong to one user, so that erasing an account finds every
//! item: every item that carries a user id lives under one of these partition keys, and the
//! erase worker deletes each partition whole. Anonymous items (duplicate markers, day keys,
//! anonymous idempotency records, counters keyed by address hashes) carry no user id.

use uuid::Uuid;

/// The persona status read model of `owner` (one item, sort key `current`).
pub fn status_partition(owner: Uuid) -> String {
    format!("persona-status#{owner}")
}

/// `owner`'s idempotency records (sort key: operation and key).
pub fn idempotency_partition(owner: Uuid) -> String {
    format!("idem#user#{owner}")
}

/// Rate-limit counters of `subject` (a user id, or a keyed hash of an address), every policy and
/// window (sort key: policy and window start).
pub fn rate_partition(subject: &str) -> String {
    format!("rate#{subject}")
}

/// Every partition that may hold items of `user`.
pub fn partitions_of(user: Uuid) -> [String; 3] {
    [
        status_partition(user),
        idempotency_partition(user),
        rate_partition(&user.to_string()),
    ]
}
