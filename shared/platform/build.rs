//! The migrations are embedded at compile time (`refinery::embed_migrations!`): rebuild this
//! crate whenever a migration is added or changed, or a stale binary would miss it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
