//! Label and annotation keys written on a registered pod (CONTRACT §1).

/// Label holding the instance id.
pub const LABEL_ID: &str = "gomicro-service-id";
/// Label holding the service name; discovery selects on it.
pub const LABEL_APP: &str = "gomicro-service-app";
/// Label holding the service version.
pub const LABEL_VERSION: &str = "gomicro-service-version";
/// Annotation holding the instance metadata as a JSON object of strings.
pub const ANNOTATION_METADATA: &str = "gomicro-service-metadata";
/// Annotation mapping port numbers (as strings) to schemes, as a JSON object.
pub const ANNOTATION_PROTOCOLS: &str = "gomicro-service-protocols";

/// The label selector matching every pod of service `name`.
pub fn app_selector(name: &str) -> String {
    format!("{LABEL_APP}={name}")
}
