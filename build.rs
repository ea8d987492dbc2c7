fn main() {
    // napi-build sets up linking for the Node addon; pure-Rust test builds
    // (`--no-default-features`) need none of it.
    if std::env::var_os("CARGO_FEATURE_NODE").is_some() {
        napi_build::setup();
    }
}
