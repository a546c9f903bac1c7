//! Protobuf APIs of the Go-Micro example services, compiled with tonic/prost.
//!
//! Packages (CONTRACT §5): [`common::authn`], [`token_srv::v1`], [`user_srv::v1`],
//! [`admin_srv::v1`]. Each service module has a `*_server` and a `*_client` submodule.
//! Field names are lowerCamel in the proto files, so their JSON names equal the proto names.

include!(concat!(env!("OUT_DIR"), "/gomicro_packages.rs"));

/// Encoded `FileDescriptorSet` of all four packages, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/gomicro_descriptor.bin"));

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

    #[test]
    fn descriptor_set_lists_all_packages() {
        let set = prost_types_lite::decode_packages(FILE_DESCRIPTOR_SET);
        for package in [
            "common.authn",
            "token_srv.v1",
            "user_srv.v1",
            "admin_srv.v1",
        ] {
            assert!(
                set.iter().any(|p| p == package),
                "{package} missing from {set:?}"
            );
        }
    }

    /// Minimal decoding of FileDescriptorSet.file[].package without prost-types.
    mod prost_types_lite {
        #[derive(Clone, PartialEq, prost::Message)]
        struct FileDescriptorSet {
            #[prost(message, repeated, tag = "1")]
            file: Vec<FileDescriptor>,
        }
        #[derive(Clone, PartialEq, prost::Message)]
        struct FileDescriptor {
            #[prost(string, tag = "2")]
            package: String,
        }
        pub fn decode_packages(bytes: &[u8]) -> Vec<String> {
            let set: FileDescriptorSet =
                prost::Message::decode(bytes).expect("valid descriptor set");
            set.file.into_iter().map(|f| f.package).collect()
        }
    }
}
