// Rebuild when a migration is added: `sqlx::migrate!()` embeds the folder at compile time
// (sqlx's documented build script).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
