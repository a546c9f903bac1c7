//! The conformance cases against the reference services, one test per case, generated from the
//! case registry (`cargo nextest run -p harness --test conformance --list`); each passing case's
//! normalised observations are an insta snapshot. Third parties write the same few lines with
//! their own profile (see `harness::testing`).

fn main() {
    harness::testing::ConformanceTests::new("../fixtures/profiles/reference.yaml")
        .harness_exe(env!("CARGO_BIN_EXE_harness"))
        .with_images_of("../fixtures/profiles/unsorted-manifests.yaml")
        .on_pass(|id, observations| insta::assert_json_snapshot!(id, observations))
        .main()
}
