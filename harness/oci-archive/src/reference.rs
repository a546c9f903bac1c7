//! Image references in the fully qualified form the CRI looks images up by.

use anyhow::{Result, bail};

/// The fully qualified form of an image reference, as the kubelet's CRI calls name it:
/// `pause` is `docker.io/library/pause:latest`, `gomicro/token-srv:dev` is
/// `docker.io/gomicro/token-srv:dev`; a reference with a registry host (a first component
/// holding `.` or `:`, or `localhost`) keeps it. Refuses what no registry would accept.
pub fn normalize_reference(reference: &str) -> Result<String> {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    let mut components: Vec<&str> = repository.split('/').collect();
    let has_host = components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost");
    let host = if has_host {
        components.remove(0)
    } else {
        "docker.io"
    };
    if components.iter().any(|c| !valid_path_component(c)) {
        bail!(
            "invalid image reference {reference:?}: each path component must be lowercase \
             letters, digits and . _ - (not at either end)"
        );
    }
    if host == "docker.io" && components.len() == 1 {
        components.insert(0, "library");
    }
    if let Some(tag) = tag
        && !valid_tag(tag)
    {
        bail!("invalid image reference {reference:?}: tag {tag:?} is not [A-Za-z0-9_.-]{{1,128}}");
    }
    let mut normalized = format!("{host}/{}", components.join("/"));
    match (tag, digest) {
        (Some(tag), _) => normalized += &format!(":{tag}"),
        (None, None) => normalized += ":latest",
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        if !digest.starts_with("sha256:") || digest.len() != 71 {
            bail!("invalid image reference {reference:?}: digest must be sha256:<64 hex>");
        }
        normalized += &format!("@{digest}");
    }
    Ok(normalized)
}

fn valid_path_component(component: &str) -> bool {
    let separator = |c: char| matches!(c, '.' | '_' | '-');
    !component.is_empty()
        && component
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || separator(c))
        && !component.starts_with(separator)
        && !component.ends_with(separator)
}

fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_get_docker_io_library_and_latest() {
        let cases = [
            ("pause", "docker.io/library/pause:latest"),
            ("gomicro/token-srv:dev", "docker.io/gomicro/token-srv:dev"),
            ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/team/app:1.2", "localhost:5000/team/app:1.2"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_reference(input).unwrap(), expected, "{input}");
        }
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            normalize_reference(&format!("app@{digest}")).unwrap(),
            format!("docker.io/library/app@{digest}")
        );
    }

    #[test]
    fn malformed_references_are_refused_with_the_reason() {
        for (input, reason) in [
            ("Upper/app", "lowercase"),
            ("app:", "tag"),
            ("a//b", "lowercase"),
            ("app@md5:00", "digest"),
            ("-app", "lowercase"),
        ] {
            let error = normalize_reference(input).unwrap_err().to_string();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }
}
