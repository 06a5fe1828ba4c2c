//! UniFFI's binding generator, built from the same UniFFI version as the library:
//! `cargo run -p passage-ffi --features bindgen --bin uniffi-bindgen -- generate
//! --library target/debug/libpassage_ffi.so --language python --out-dir OUT`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
