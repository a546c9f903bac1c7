//! Protobuf APIs of the Go-Micro example services, compiled with tonic/prost.
//!
//! Packages (CONTRACT §5): [`common::authn`], [`token_srv::v1`], [`user_srv::v1`],
//! [`admin_srv::v1`]. Each service module has a `*_server` and a `*_client` submodule.
//! Field names are lowerCamel in the proto files, so their JSON names equal the proto names.

include!(concat!(env!("OUT_DIR"), "/gomicro_packages.rs"));

/// Encoded `FileDescriptorSet` of all four packages, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gomicro_descriptor.bin"));

/// The encoded descriptor set restricted to the files of `packages` (e.g. a service's own
/// package and `common.authn`), so reflection lists only what a server serves.
pub fn file_descriptor_set_of(packages: &[&str]) -> Vec<u8> {
    use prost::Message;
    let set = descriptor_lite::RawFileSet::decode(FILE_DESCRIPTOR_SET)
        .expect("the built-in descriptor set decodes");
    let file = set
        .file
        .into_iter()
        .filter(|raw| {
            let header = descriptor_lite::FileHeader::decode(raw.as_slice())
                .expect("file descriptors decode");
            packages.contains(&header.package.as_str())
        })
        .collect();
    descriptor_lite::RawFileSet { file }.encode_to_vec()
}

/// Just enough of `google.protobuf.FileDescriptorSet` to select files without re-encoding
/// them (each file stays the exact bytes protoc wrote).
mod descriptor_lite {
    /// A `FileDescriptorSet` whose files are kept as raw bytes.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RawFileSet {
        #[prost(bytes = "vec", repeated, tag = "1")]
        pub file: Vec<Vec<u8>>,
    }

    /// The name and package of a `FileDescriptorProto` (other fields skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FileHeader {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub package: String,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn field_numbers_match_the_contract() {
        // LoginRequest{userName=1,password=2}: tag bytes 0x0a and 0x12.
        let bytes = admin_srv::v1::LoginRequest {
            user_name: "a".into(),
            password: "b".into(),
        }
        .encode_to_vec();
        assert_eq!(bytes, [0x0a, 1, b'a', 0x12, 1, b'b']);
        let claims = common::authn::Claims {
            nick_name: "n".into(),
            ..Default::default()
        };
        assert_eq!(claims.encode_to_vec(), [0x2a, 1, b'n']);
        let user = user_srv::v1::User {
            password: "p".into(),
            ..Default::default()
        };
        assert_eq!(user.encode_to_vec(), [0x22, 1, b'p']);
        let reply = admin_srv::v1::LoginReply {
            token: "t".into(),
            ..Default::default()
        };
        assert_eq!(reply.encode_to_vec(), [0x1a, 1, b't']);
    }

    #[test]
    fn platform_enum_names_are_prefixed() {
        assert_eq!(
            token_srv::v1::TokenPlatform::Web.as_str_name(),
            "TOKEN_PLATFORM_WEB"
        );
        assert_eq!(token_srv::v1::TokenPlatform::Ios as i32, 3);
    }

    fn packages_of(encoded: &[u8]) -> Vec<String> {
        let set = descriptor_lite::RawFileSet::decode(encoded).unwrap();
        set.file
            .iter()
            .map(|raw| {
                descriptor_lite::FileHeader::decode(raw.as_slice())
                    .unwrap()
                    .package
            })
            .collect()
    }

    #[test]
    fn descriptor_set_lists_all_packages() {
        let packages = packages_of(FILE_DESCRIPTOR_SET);
        for package in [
            "common.authn",
            "token_srv.v1",
            "user_srv.v1",
            "admin_srv.v1",
        ] {
            assert!(
                packages.iter().any(|p| p == package),
                "{package} missing from {packages:?}"
            );
        }
    }

    #[test]
    fn descriptor_subset_keeps_only_the_asked_packages() {
        let subset = file_descriptor_set_of(&["token_srv.v1", "common.authn"]);
        let mut packages = packages_of(&subset);
        packages.sort();
        assert_eq!(packages, ["common.authn", "token_srv.v1"]);
    }
}
