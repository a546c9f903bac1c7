//! Which reflected file defines a symbol, and which types that definition uses: what Core
//! reflection needs to resolve (CONTRACT.md §5).

use std::collections::BTreeMap;

use prost_types::{DescriptorProto, FileDescriptorProto};

/// Where a symbol is defined and the types its definition refers to.
#[derive(Debug, PartialEq)]
pub(super) struct Found {
    /// The file defining it.
    pub(super) file: String,
    /// Fully qualified types it uses (a service's request and reply types, a message's field
    /// types), without the leading dot.
    pub(super) uses: Vec<String>,
}

/// The file among `files` defining `symbol` (a service, message or enum, with or without the
/// leading dot), with the types the definition uses.
pub(super) fn find(files: &BTreeMap<String, FileDescriptorProto>, symbol: &str) -> Option<Found> {
    let symbol = symbol.trim_start_matches('.');
    files.values().find_map(|file| {
        let scope = file.package();
        let found = |uses| Found {
            file: file.name().to_string(),
            uses,
        };
        for service in &file.service {
            if qualified(scope, service.name()) == symbol {
                let uses = service
                    .method
                    .iter()
                    .flat_map(|m| [m.input_type(), m.output_type()])
                    .map(|t| t.trim_start_matches('.').to_string())
                    .collect();
                return Some(found(uses));
            }
        }
        for enumeration in &file.enum_type {
            if qualified(scope, enumeration.name()) == symbol {
                return Some(found(Vec::new()));
            }
        }
        file.message_type
            .iter()
            .find_map(|message| in_message(scope, message, symbol))
            .map(found)
    })
}

/// The types used by `message` or the nested definition named `symbol` inside it.
fn in_message(scope: &str, message: &DescriptorProto, symbol: &str) -> Option<Vec<String>> {
    let name = qualified(scope, message.name());
    if name == symbol {
        return Some(
            message
                .field
                .iter()
                .filter(|f| !f.type_name().is_empty())
                .map(|f| f.type_name().trim_start_matches('.').to_string())
                .collect(),
        );
    }
    if message
        .enum_type
        .iter()
        .any(|e| qualified(&name, e.name()) == symbol)
    {
        return Some(Vec::new());
    }
    message
        .nested_type
        .iter()
        .find_map(|nested| in_message(&name, nested, symbol))
}

fn qualified(scope: &str, name: &str) -> String {
    if scope.is_empty() {
        name.to_string()
    } else {
        format!("{scope}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use prost_types::FileDescriptorSet;

    fn reference_files() -> BTreeMap<String, FileDescriptorProto> {
        FileDescriptorSet::decode(gomicro_proto::FILE_DESCRIPTOR_SET)
            .unwrap()
            .file
            .into_iter()
            .map(|f| (f.name().to_string(), f))
            .collect()
    }

    #[test]
    fn a_service_uses_its_request_and_reply_types() {
        let files = reference_files();
        let found = find(&files, "admin_srv.v1.AuthenticationService").unwrap();
        assert_eq!(
            found.uses,
            ["admin_srv.v1.LoginRequest", "admin_srv.v1.LoginReply"]
        );
        let request = find(&files, ".admin_srv.v1.LoginRequest").unwrap();
        assert_eq!(request.file, found.file);
        assert!(request.uses.is_empty(), "{:?}", request.uses);
    }

    #[test]
    fn message_fields_lead_to_the_files_defining_their_types() {
        let files = reference_files();
        let request = find(&files, "token_srv.v1.GenerateTokenRequest").unwrap();
        assert_eq!(request.uses, ["common.authn.Claims"]);
        let claims = find(&files, "common.authn.Claims").unwrap();
        assert_ne!(claims.file, request.file);
        assert!(find(&files, "no.such.Type").is_none());
    }
}
