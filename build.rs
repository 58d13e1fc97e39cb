//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!`
//! embeds `migrations/` at compile time, and cargo would not otherwise see a
//! new file there (the binary would run without it).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
